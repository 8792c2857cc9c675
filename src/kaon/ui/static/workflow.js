/* A workflow page: properties, triggers and what they fired, the start form generated from the typed parameters,
 * versions (diff two, activate one), run history with filters, and who did what. */
"use strict";
(() => {
  const { api, el, badge, when, runDuration, banner, refusal, confirmAction, q, auditRows, auditTail } = Kaon;
  const name = document.getElementById("workflow").dataset.workflow;
  const base = `/workflows/${encodeURIComponent(name)}`;
  let offset = 0; // how many newer runs the run history's page follows (shown as "26–50 of N")
  let starts = []; // each older page's keyset: CREATED_AT,ID of the run before it (GET runs?before=)
  let form = null; // the parameters of the version the start form was made for
  const LIMIT = 25;
  const FIRINGS = 10; // the newest firings of the workflow's triggers shown
  const VERSIONS = 50; // versions a page shows, newest first
  const versionPages = [null]; // the ``before`` of each page shown so far (null: the newest)

  async function load() {
    const before = versionPages[versionPages.length - 1];
    const [wf, page, triggers, firings] = await Promise.all([
      api(base), api(`${base}/versions?` + q({ limit: VERSIONS + 1, before })),
      api("/triggers?" + q({ workflow: name })).catch(() => []),
      api("/triggers/firings?" + q({ workflow: name, limit: FIRINGS })).catch(() => [])]);
    const older = page.length > VERSIONS; // one more than shown: another page follows
    const versions = older ? page.slice(1) : page;
    const props = document.getElementById("props");
    props.replaceChildren(el("dt", {}, "owner"), el("dd", {}, wf.owner_group || "—"),
      el("dt", {}, "active version"), el("dd", {}, wf.active_version ? `v${wf.active_version}` : "none"),
      ...Object.entries(wf.properties).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, JSON.stringify(v))]));
    document.getElementById("triggers").replaceChildren(...(triggers.length ? triggers.map((t) =>
      el("li", { "data-trigger": t.kind }, el("b", {}, t.kind), " ", t.description,
        t.next_due_at ? el("span", { class: "next-fire" }, ` (next: ${when(t.next_due_at)})`) : "")) : [el("li", { class: "muted" }, "manual only")]));
    // Each firing: when it was due, what fired, and the run it started or why it started none.
    document.getElementById("firings").replaceChildren(...(firings.length ? firings.map((f) =>
      el("li", { "data-firing": f.id, "data-firing-status": f.status }, when(f.due_at), " ", el("b", {}, f.kind),
        f.what ? ` ${f.what} ` : " ", badge(f.status), " ",
        f.run_id ? el("a", { href: `/ui/runs/${encodeURIComponent(f.run_id)}`, class: "mono" }, f.run_id)
          : el("span", { class: "field-error" }, f.error || "no run"))) : [el("li", { class: "muted" }, "none yet")]));
    const rows = document.querySelector("#versions tbody");
    rows.replaceChildren(...versions.slice().reverse().map((v) => el("tr", { "data-version": v.version },
      el("td", {}, el("input", { type: "checkbox", class: "diff-pick", value: v.version })),
      el("td", {}, `v${v.version}`, v.active ? " (active)" : ""), el("td", {}, when(v.created_at)),
      el("td", {}, v.created_by), el("td", { class: "mono" }, v.source_name),
      el("td", {}, v.active ? "" : el("button", { type: "button", "data-activate": v.version, onclick: () => confirmAction(
        `Activate v${v.version}`, `New runs of ${name} will use version ${v.version}.`,
        async () => { await api(`${base}/activate`, { method: "POST", body: { version: v.version } }); banner(`v${v.version} is active`); load(); loadAudit(); },
        null, { needs: "owner" }) }, "Activate")))));
    document.getElementById("versions-pager").replaceChildren(
      el("button", { type: "button", "data-versions": "newer", disabled: versionPages.length === 1, onclick: () => { versionPages.pop(); load(); } }, "‹ newer"),
      el("button", { type: "button", "data-versions": "older", disabled: !older, onclick: () => { versionPages.push(versions[0].version); load(); } }, "older ›"));
    await loadForm();
  }

  // -- the start form, generated from the version's typed parameters --------------------------

  const INPUTS = { int: "number", float: "number", str: "text" };

  function fieldFor(p) {
    const id = `param-${p.name}`;
    const hint = [p.nullable ? `${p.type} or null` : p.type, p.required ? "required" : null, p.computed ? `computed: ${p.computed}` : null].filter(Boolean).join(", ");
    let input;
    if (p.choices && p.choices.length) { // one of the declared values (null too when nullable)
      const keep = p.required ? "—" : p.computed ? `default (= ${p.computed})` : `default (${JSON.stringify(p.default)})`;
      // Sent as a string the server reads by the type: a str as typed, anything else as JSON
      // (so that the string "1" among the choices of an ``any`` is not read as the number 1).
      const options = p.choices.map((c) => el("option", { value: p.type === "str" ? c : JSON.stringify(c) }, typeof c === "string" ? c : JSON.stringify(c)));
      // The first option keeps the default (a choice may be the empty string: sent as chosen).
      input = el("select", { id, name: p.name, "data-type": p.type, "data-choices": "" },
        el("option", { value: "" }, keep), ...options, p.nullable ? el("option", { value: "null" }, "null") : null);
    } else if (p.type === "bool") {
      input = el("select", { id, name: p.name, "data-type": p.type },
        el("option", { value: "" }, p.default === null ? "—" : `default (${p.default})`), el("option", {}, "true"), el("option", {}, "false"));
    } else if (["list", "dict", "any"].includes(p.type)) {
      input = el("textarea", { id, name: p.name, rows: 2, "data-type": p.type, placeholder: p.computed ? `= ${p.computed}` : "JSON" });
      if (p.default !== null && p.default !== undefined) input.value = JSON.stringify(p.default);
    } else {
      const type = p.nullable ? "text" : INPUTS[p.type] || "text"; // a number field cannot hold "null"
      input = el("input", { id, name: p.name, type, step: type === "number" && p.type === "float" ? "any" : null,
        "data-type": p.type, required: p.required, placeholder: p.computed ? `= ${p.computed}` : p.nullable ? "null for none" : "" });
      if (p.default !== null && p.default !== undefined) input.value = String(p.default);
    }
    return el("div", { class: "field", "data-param": p.name },
      el("label", { for: id }, el("b", {}, p.name), " ", el("span", { class: "muted" }, hint)),
      input, p.description ? el("small", { class: "muted" }, p.description) : null,
      el("p", { class: "field-error", "data-error-for": p.name, hidden: true }));
  }

  async function loadForm() {
    const view = await api(`${base}/params`).catch(() => null);
    if (!view) return;
    const shown = JSON.stringify(view);
    if (shown === form) return;
    form = shown;
    document.getElementById("start-version").textContent = `(v${view.version})`;
    document.getElementById("start-fields").replaceChildren(...(view.params.length
      ? view.params.map(fieldFor) : [el("p", { class: "muted" }, "No parameters.")]));
  }

  /** The values typed in, as strings for the server to check against the declared types
   *  (an empty field: the default). A string is sent as typed, spaces kept; a number field
   *  the browser cannot read (``1e999``, ``1e``) is refused here, not dropped for the default. */
  function formValues() {
    const params = {};
    const unread = [];
    for (const input of document.querySelectorAll("#start-fields [name]")) {
      if (input.validity && input.validity.badInput) { unread.push(input.name); continue; }
      if (input.dataset.choices !== undefined) { // a list of choices: its first option keeps the default
        if (input.selectedIndex > 0) params[input.name] = input.value;
        continue;
      }
      const value = input.dataset.type === "str" ? input.value : input.value.trim();
      if (value !== "") params[input.name] = value;
    }
    return { params, unread };
  }

  function showProblems(error) {
    for (const box of document.querySelectorAll("#start .field-error")) { box.hidden = true; box.textContent = ""; }
    const general = document.getElementById("start-error");
    const breakBox = document.getElementById("start-break-error");
    const loose = [];
    for (const problem of error.problems || []) {
      const field = (problem.field || "").replace(/^params\./, "").split(".")[0];
      // No field: a breakpoint naming no step of the version goes under the breakpoints field.
      const box = field ? document.querySelector(`#start [data-error-for="${CSS.escape(field)}"]`)
        : /\bbreak/i.test(problem.message) ? breakBox : null;
      if (box) { box.textContent = problem.message; box.hidden = false; } else loose.push(problem.message);
    }
    if (!(error.problems || []).length) loose.push(refusal(error, `Starting ${name}`));
    general.textContent = loose.join("; "); general.hidden = !loose.length;
  }

  /** The breakpoints typed in: step paths (``STEP`` or ``STEP:after``), by spaces or commas. */
  const breakpoints = () => document.getElementById("start-breakpoints").value.split(/[\s,]+/).filter(Boolean);

  document.getElementById("start").addEventListener("submit", (event) => {
    event.preventDefault();
    const { params, unread } = formValues();
    for (const box of document.querySelectorAll("#start .field-error")) { box.hidden = true; box.textContent = ""; }
    if (unread.length) {
      for (const field of unread) {
        const box = document.querySelector(`#start [data-error-for="${CSS.escape(field)}"]`);
        if (box) { box.textContent = "not a number this form can read (a finite number: 12, 0.5, 1e3)"; box.hidden = false; }
      }
      return;
    }
    const stops = breakpoints();
    const shown = (Object.keys(params).length ? Object.entries(params).map(([k, v]) => `${k}=${v}`).join(", ") : "the defaults")
      + (stops.length ? `, pausing at ${stops.join(", ")}` : "");
    confirmAction(`Start ${name}`, `Start a run with ${shown}.`, async () => {
      try {
        const run = await api("/runs", { method: "POST", body: { workflow: name, params, from_strings: true, breakpoints: stops } });
        location.href = `/ui/runs/${run.id}`;
      } catch (e) {
        if (e.status === 422) { showProblems(e); return; }
        throw e;
      }
    });
  });

  // -- versions: diff two ------------------------------------------------------------------

  function diffLines(box, text) {
    box.replaceChildren(...(text ? text.split("\n").map((line) => el("span", {
      class: line.startsWith("+++") || line.startsWith("---") ? "file" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "" }, line, "\n"))
      : [el("span", { class: "muted" }, "no difference")]));
  }

  document.getElementById("diff-selected").addEventListener("click", async () => {
    const picked = [...document.querySelectorAll(".diff-pick:checked")].map((c) => Number(c.value)).sort((a, b) => a - b);
    if (picked.length !== 2) { banner("Tick two versions to compare", true); return; }
    try {
      const diff = await api(`${base}/diff?` + q({ old: picked[0], new: picked[1] }));
      document.getElementById("diff").hidden = false;
      document.getElementById("diff-title").textContent = `v${diff.old} → v${diff.new}` + (diff.same_definition ? " (same definition)" : "") + (diff.truncated ? " (cut)" : "");
      diffLines(document.getElementById("diff-source"), diff.source_diff);
      diffLines(document.getElementById("diff-spec"), diff.spec_diff);
      document.getElementById("diff-bundle").replaceChildren(...Object.entries(diff.bundle_diffs).map(([file, text]) => {
        const box = el("pre", { class: "diff", "data-bundle-file": file });
        diffLines(box, text);
        return el("details", { open: true }, el("summary", {}, `Bundle file ${file}`), box);
      }));
    } catch (e) { banner(refusal(e, "Diffing versions"), true); }
  });

  // -- run history ---------------------------------------------------------------------------

  /** Midnight (local time) of a date input, in Unix seconds; ``end``: the day's last second. */
  function day(id, end = false) {
    const value = document.getElementById(id).value;
    if (!value) return null;
    const at = new Date(`${value}T00:00:00`).getTime() / 1000;
    return end ? at + 86399.999 : at;
  }

  async function loadRuns() {
    const asked = (loadRuns.asked = (loadRuns.asked || 0) + 1);
    const filters = { status: document.getElementById("run-status").value, since: day("run-since"),
      until: day("run-until", true), q: document.getElementById("run-text").value.trim() };
    const place = starts.length ? { before: starts[starts.length - 1] } : {};
    const page = await api(`${base}/runs?` + q({ ...filters, limit: LIMIT, ...place }));
    if (asked !== loadRuns.asked) return; // a later request owns the table
    const runs = page.runs;
    document.querySelector("#runs tbody").replaceChildren(...runs.map((r) => el("tr", { "data-run": r.id },
      el("td", {}, el("input", { type: "checkbox", value: r.id, class: "pick" })),
      el("td", {}, el("a", { class: "mono", href: `/ui/runs/${r.id}` }, r.id)),
      el("td", {}, badge(r.status)), el("td", { class: "mono" }, JSON.stringify(r.params).slice(0, 80)),
      el("td", {}, r.started_by || ""), el("td", {}, when(r.created_at)), el("td", {}, runDuration(r)))));
    const pager = document.getElementById("runs-pager");
    pager.replaceChildren(
      el("button", { type: "button", disabled: offset === 0, onclick: () => { starts.pop(); offset = Math.max(0, offset - LIMIT); loadRuns(); } }, "‹ newer"),
      el("span", { "data-total": page.total }, page.total ? `${(offset + 1).toLocaleString()}–${(offset + runs.length).toLocaleString()} of ${page.total.toLocaleString()}` : "none"),
      el("button", { type: "button", disabled: offset + runs.length >= page.total || !runs.length, onclick: () => {
        const last = runs[runs.length - 1];
        starts.push(`${last.created_at},${last.id}`); // a keyset: a deep page costs what it shows
        offset += LIMIT;
        loadRuns();
      } }, "older ›"));
  }

  async function loadAudit() {
    const body = document.querySelector("#wf-audit tbody");
    let entries;
    try { entries = await auditTail(`${base}/audit`); } catch (e) {
      // A refused read is not an empty trail: say why nothing is listed.
      body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: 4, "data-audit-refused": "" }, refusal(e, "Reading the activity"))));
      return;
    }
    body.replaceChildren(...auditRows(entries));
  }

  for (const id of ["run-status", "run-since", "run-until", "run-text"]) {
    document.getElementById(id).addEventListener("change", () => { offset = 0; starts = []; loadRuns().catch((e) => banner(refusal(e, "Listing runs"), true)); });
  }
  document.getElementById("unblock").addEventListener("click", () => confirmAction(`Unblock ${name}`,
    "Let a strict-sequential workflow start runs again after a failed run.", async () => {
      const view = await api(`${base}/unblock`, { method: "POST", body: {} });
      banner(view.was_blocked ? `${name} is unblocked` : `${name} was not blocked`);
      loadAudit();
    }));
  document.getElementById("compare-selected").addEventListener("click", () => {
    const ids = [...document.querySelectorAll(".pick:checked")].map((c) => c.value);
    location.href = "/ui/compare?" + q({ runs: ids.join(",") });
  });
  load().catch((e) => banner(`Could not load ${name}: ${e.message}`, true));
  loadRuns().catch((e) => banner(refusal(e, "Listing runs"), true));
  loadAudit();
})();
