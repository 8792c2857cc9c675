/* Kaon web UI: helpers shared by every page (API calls, statuses, confirmations). */
"use strict";
const Kaon = (() => {
  const RANK = { viewer: 0, operator: 1, owner: 2, admin: 3 };
  const role = document.body.dataset.role || "viewer";

  /** Call the HTTP API with the session cookie; resolves to JSON, rejects with an Error
   *  carrying the API's status and message. */
  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (init.method && init.method !== "GET") {
      init.headers = { ...init.headers, "X-Kaon-UI": "1", "Content-Type": "application/json" };
      if (init.body !== undefined && typeof init.body !== "string") init.body = JSON.stringify(init.body);
    }
    // A read the page started before its scripts loaded (see run.html), taken over once.
    const early = !init.method || init.method === "GET" ? (window.kaonEarly || {})[path] : undefined;
    if (early) delete window.kaonEarly[path];
    const answer = await (early || fetch(path, init));
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
    if (!answer.ok) {
      if (answer.status === 401) toLogin();
      const error = new Error((data && data.message) || answer.statusText);
      error.status = answer.status;
      error.kind = data && data.error;
      error.problems = (data && data.problems) || [];
      throw error;
    }
    return data;
  }

  /** The session ended (expired, revoked): log in again, then come back here. */
  function toLogin() {
    location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  /** Why an event stream (``url``) that failed cannot go on, asked with one request (a
   *  stream it opens is closed at once): an EventSource does not say, and stops for good on
   *  a refusal, or retries a refused request forever. A 401 (the session ended or was
   *  revoked) goes to the login page, as api() does. Resolves to an Error with the refusal's
   *  status and message, or null when the stream is served or the server is unreachable. */
  async function streamRefusal(url) {
    const controller = new AbortController();
    let answer;
    try {
      answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/event-stream" }, signal: controller.signal });
    } catch (e) { return null; }
    if (answer.ok) { controller.abort(); return null; }
    const text = await answer.text().catch(() => "");
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
    if (answer.status === 401) toLogin();
    const error = new Error((data && data.message) || answer.statusText);
    error.status = answer.status;
    return error;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const badge = (status) => el("span", { class: `badge s-${status}` }, status);
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
  function duration(s) {
    if (s === null || s === undefined) return "";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  const runDuration = (r) => duration(r.duration_s ?? (r.started_at ? (r.ended_at || Date.now() / 1000) - r.started_at : null));

  function banner(message, error = false) {
    const box = document.getElementById("banner");
    box.textContent = message;
    box.className = error ? "banner error" : "banner";
    box.hidden = false;
    box.setAttribute("role", error ? "alert" : "status");
    clearTimeout(banner.timer);
    banner.timer = setTimeout(() => { box.hidden = true; }, error ? 15000 : 6000);
  }

  /** Explain a refused action clearly (the API decides; the UI only says why). */
  function refusal(error, what) {
    if (error.status === 403) return `Refused: ${what} needs a role your token (${role}) does not have for this workflow. ${error.message}`;
    if (error.status === 409) return `Not possible now: ${error.message}`;
    return `${what} failed: ${error.message}`;
  }

  /** Ask for confirmation (with an optional text field and an optional checkbox), then run
   *  ``action(text, checked)``. ``needs`` is the least role the server will accept. */
  function confirmAction(title, detail, action, field = null, { check = null, needs = "operator" } = {}) {
    const input = field ? el("input", { type: "text", placeholder: field, name: "value" }) : null;
    const box = check ? el("input", { type: "checkbox", name: "check" }) : null;
    const dialog = el("dialog", { class: "confirm" },
      el("h2", {}, title), el("p", {}, detail),
      role in RANK && RANK[role] < RANK[needs] ? el("p", { class: "muted" }, `Your role is ${role}: the server will probably refuse this.`) : null,
      input ? el("label", {}, field, input) : null,
      box ? el("label", { class: "check" }, box, " ", check) : null,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "danger", "data-confirm": "yes", onclick: async () => {
          dialog.close(); dialog.remove();
          try { await action(input ? input.value : undefined, box ? box.checked : false); } catch (e) { banner(refusal(e, title), true); }
        } }, "Confirm"),
        el("button", { type: "button", onclick: () => { dialog.close(); dialog.remove(); } }, "Cancel")));
    document.body.append(dialog);
    dialog.showModal();
  }

  const q = (params) => {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === null || v === undefined || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => search.append(k, x)); else search.set(k, v);
    }
    return search.toString();
  };

  function sparkline(values, width = 120, height = 24) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark"); svg.setAttribute("width", width); svg.setAttribute("height", height);
    if (values.length > 1) {
      const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
      const points = values.map((v, i) => `${(i / (values.length - 1)) * (width - 2) + 1},${height - 1 - ((v - lo) / span) * (height - 2)}`);
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", points.join(" ")); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3457d5");
      svg.append(line);
    }
    return svg;
  }

  /** The newest ``keep`` entries of an audit trail route (oldest first, paged by id). */
  async function auditTail(route, keep = 50) {
    let entries = [];
    let after = 0;
    for (let page = 0; page < 20; page++) {
      const found = await api(`${route}?after=${after}&limit=1000`);
      entries = entries.concat(found).slice(-keep);
      if (found.length < 1000) break;
      after = found[found.length - 1].id;
    }
    return entries;
  }

  /** The audit trail (who did what) as table rows. */
  function auditRows(entries) {
    if (!entries.length) return [el("tr", {}, el("td", { class: "muted", colspan: 4 }, "No actions yet."))];
    return entries.slice().reverse().map((a) => el("tr", { "data-audit": a.action },
      el("td", {}, when(a.at)),
      el("td", {}, el("b", { title: a.token_id ? `token ${a.token_id}` : null }, a.actor),
        a.token_id ? el("span", { class: "muted mono" }, ` ${a.token_id}`) : null),
      el("td", {}, a.action),
      el("td", { class: "mono" }, Object.entries(a.data).filter(([k, v]) => v !== null && k !== "workflow")
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" "))));
  }

  return { api, streamRefusal, el, badge, when, auditRows, auditTail, duration, runDuration, banner, refusal, confirmAction, q, sparkline, role, RANK };
})();
