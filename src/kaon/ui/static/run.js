/* The run page: live graph (cytoscape + dagre), counts, paged items, the step panel, actions.
 *
 * Everything comes from the bounded reads of the API: the summary (counts computed in the
 * database, the top-level graph with each foreach/loop rolled up as one node), pages of a
 * node's children, one step's detail, windows of its log. The event stream (GET /events from
 * the summary's last event id) only tells the page that something changed; the page then
 * re-reads what it shows, at most a few times a second.
 */
"use strict";
(() => {
  const { api, el, badge, when, duration, runDuration, banner, confirmAction, q, sparkline, auditRows, auditTail } = Kaon;
  const runId = document.getElementById("run").dataset.run;
  const RUN = `/runs/${encodeURIComponent(runId)}`;
  const COLORS = {
    succeeded: "#2e9d57", cached: "#5bb37e", failed: "#d33b3b", running: "#2f7ae5", queued: "#8a63d2",
    retrying: "#e08a1e", waiting: "#c9a227", pending: "#9aa3b2", skipped: "#b7bdc8", cancelled: "#7c8494",
    paused: "#c2418f",
  };
  const CONTAINERS = new Set(["foreach", "loop", "subworkflow", "item", "iteration"]);
  const PAGE = 100;
  const state = { summary: null, cy: null, items: null, panel: null, logAfter: null, refreshing: false, again: false };

  // -- summary, header, counts ---------------------------------------------------------------

  /** Read and show the summary; ``fetched`` (when given) sees it first, before the graph is
   * laid out, so that the reads it starts run on the server while the browser draws. */
  async function loadSummary(fetched) {
    const summary = await api(`${RUN}/summary`);
    state.summaryAt = Date.now();
    if (fetched) fetched(summary);
    // What the page shows but the clock: events that change nothing shown (500 a second on a
    // busy run) cost one read and one comparison, not a redraw of the head and the graph.
    const seen = JSON.stringify({ ...summary, last_event_id: 0, duration_s: 0,
      nodes: summary.nodes.map((n) => ({ ...n, duration_s: 0 })) });
    const timeline = document.getElementById("timeline-box").open;
    state.summary = summary;
    if (seen === state.summaryShown) {
      if (!summary.ended_at) document.querySelector("#run-facts [data-fact=duration]").textContent = runDuration(summary);
      if (timeline && !summary.ended_at) renderTimeline(summary);
      return summary;
    }
    state.summaryShown = seen;
    renderHead(summary);
    renderGraph(summary);
    if (timeline) renderTimeline(summary);
    return summary;
  }

  function renderHead(s) {
    const wf = document.getElementById("run-workflow");
    wf.textContent = s.workflow; wf.href = `/ui/workflows/${encodeURIComponent(s.workflow)}`;
    document.getElementById("run-id").textContent = s.id;
    const status = document.getElementById("run-status");
    status.className = `badge s-${s.status}`; status.textContent = s.status;
    const labels = Object.entries(s.labels).filter(([k]) => !["by", "version"].includes(k));
    const facts = [["version", s.labels.version ? `v${s.labels.version}` : "—"], ["started by", s.started_by || "—"],
      ["created", when(s.created_at)], ["duration", runDuration(s)], ["restarts", s.restarts],
      ...labels.map(([k, v]) => k === "kaon.breakpoints" && Array.isArray(v) ? ["breakpoints", v.join(", ")]
        : [k, typeof v === "string" ? v : JSON.stringify(v)]),
      ["parameters", JSON.stringify(s.params)]];
    if (s.error) facts.push(["error", s.error]);
    if (s.waiting) facts.push(["waiting", s.waiting]);  // its workflow's run strategy holds it
    document.getElementById("run-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)]));
    const total = Object.values(s.tasks).reduce((a, b) => a + b, 0);
    document.getElementById("counts").replaceChildren(el("span", { class: "muted" }, `${total} tasks:`),
      ...Object.entries(s.tasks).map(([k, v]) => el("span", { class: `badge s-${k}`, "data-count": k }, `${k} ${v.toLocaleString()}`)));
    document.getElementById("compare-link").href = "/ui/compare?" + q({ runs: s.id });
    const paused = s.status === "paused";
    document.getElementById("continue-run").hidden = !paused;
    const note = document.getElementById("held-note");
    note.hidden = !paused;
    const held = s.tasks.paused || 0;
    note.textContent = paused ? `Paused at a breakpoint: ${held} step${held === 1 ? "" : "s"} held (open one to see what it holds). Other branches go on.` : "";
  }

  // -- the graph -----------------------------------------------------------------------------

  /** Why a step was not taken (a skipped step's reason), cut short for a graph label. */
  const notTaken = (n) => (n.status === "skipped" && n.reason ? n.reason : "");

  function label(n) {
    const kids = Object.entries(n.children);
    const why = notTaken(n);
    const held = n.status === "paused" ? "\n(paused)" : why ? `\n(${why.length > 40 ? why.slice(0, 39) + "…" : why})` : "";
    if (!kids.length) return (n.kind === "task" ? n.step_id : `${n.step_id} (${n.kind})`) + held;
    const counted = kids.reduce((a, [, v]) => a + v, 0);
    // A foreach's items are created as they start (up to its concurrency): its total is the
    // number of items it was given, the ones not started yet shown as such.
    const total = Math.max(counted, n.items || 0);
    const waiting = total > counted ? [["not started", total - counted]] : [];
    const parts = [...kids, ...waiting].map(([k, v]) => `${k} ${v.toLocaleString()}`).join(" · ");
    return `${n.step_id} [${n.kind} ×${total.toLocaleString()}]\n${parts}`;
  }

  function nodeData(n) {
    return { id: n.path, label: label(n), color: COLORS[n.status] || COLORS.pending, status: n.status,
      kind: n.kind, started: n.started ? 1 : 0, container: CONTAINERS.has(n.kind) ? 1 : 0, held: isHeld(n) ? 1 : 0 };
  }

  /** A node held at a breakpoint, or one whose items or iterations hold steps. */
  const isHeld = (n) => n.status === "paused" || (n.children.paused || 0) > 0 || (n.held || 0) > 0;

  function renderGraph(s) {
    const ids = s.nodes.map((n) => n.path).join("|");
    document.getElementById("graph").dataset.held = s.nodes.filter(isHeld).map((n) => n.path).join(" ");
    document.getElementById("graph").dataset.notTaken = s.nodes.filter(notTaken).map((n) => `${n.path}: ${notTaken(n)}`).join("\n");
    if (state.cy && state.cy.scratch("_ids") === ids) {
      state.cy.batch(() => {
        for (const n of s.nodes) {
          const node = state.cy.getElementById(n.path), data = nodeData(n);
          if (Object.entries(data).some(([k, v]) => node.data(k) !== v)) node.data(data); // only what changed redraws
        }
      });
      return;
    }
    if (state.cy) state.cy.destroy();
    const known = new Set(s.nodes.map((n) => n.path));
    const elements = [
      ...s.nodes.map((n) => ({ data: nodeData(n) })),
      ...s.edges.filter((e) => known.has(e.source) && known.has(e.target))
        .map((e) => ({ data: { id: `${e.source}->${e.target}`, source: e.source, target: e.target } })),
    ];
    const cy = cytoscape({
      container: document.getElementById("graph"), elements, wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 1.4,
      layout: { name: "dagre", rankDir: "LR", nodeSep: 18, rankSep: 50, fit: true, padding: 24 },
      style: [
        { selector: "node", style: { shape: "round-rectangle", "background-color": "data(color)", label: "data(label)",
          color: "#fff", "font-size": 11, "text-valign": "center", "text-halign": "center", "text-wrap": "wrap",
          width: "label", height: "label", padding: 8 } },
        { selector: "node[container = 1]", style: { "border-width": 3, "border-color": "#1d2330", "font-weight": "bold" } },
        { selector: "node[started = 0]", style: { opacity: 0.45, "border-style": "dashed", "border-width": 2, "border-color": "#6b7385" } },
        { selector: "node[status = 'skipped']", style: { opacity: 0.55 } },
        { selector: "node[held = 1]", style: { "border-width": 4, "border-style": "double", "border-color": "#7a1f55" } },
        { selector: "node:selected", style: { "overlay-color": "#3457d5", "overlay-opacity": 0.25 } },
        { selector: "edge", style: { width: 1.5, "line-color": "#9aa3b2", "target-arrow-color": "#9aa3b2",
          "target-arrow-shape": "triangle", "curve-style": "bezier" } },
      ],
    });
    cy.scratch("_ids", ids);
    cy.on("tap", "node", (event) => {
      const n = state.summary.nodes.find((x) => x.path === event.target.id());
      if (!n) return;
      if (CONTAINERS.has(n.kind) && n.started) openItems([n.path]);
      openPanel(n.path, n);
    });
    state.cy = cy;
    document.getElementById("graph").dataset.nodes = String(s.nodes.length);
  }

  // -- the timeline (Gantt) of the top level ---------------------------------------------------

  function renderTimeline(s) {
    const box = document.getElementById("timeline");
    const now = Date.now() / 1000;
    const nodes = s.nodes.filter((n) => n.started_at);
    const start = s.started_at || Math.min(...nodes.map((n) => n.started_at));
    const end = Math.max(s.ended_at || now, ...nodes.map((n) => n.ended_at || now));
    const ns = "http://www.w3.org/2000/svg", row = 18, left = 160, width = 900;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", left + width + 80); svg.setAttribute("height", nodes.length * row + 6);
    const span = Math.max(end - start, 0.001);
    nodes.forEach((n, i) => {
      const x = left + ((n.started_at - start) / span) * width;
      const w = Math.max((((n.ended_at || now) - n.started_at) / span) * width, 2);
      const bar = document.createElementNS(ns, "rect");
      for (const [k, v] of Object.entries({ x, y: i * row + 3, width: w, height: row - 6, rx: 2, fill: COLORS[n.status] || COLORS.pending, "data-path": n.path })) bar.setAttribute(k, v);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${n.path}: ${n.status}, ${duration(n.duration_s)}`;
      bar.append(title);
      const name = document.createElementNS(ns, "text");
      name.setAttribute("x", 4); name.setAttribute("y", i * row + 13); name.textContent = n.path;
      const took = document.createElementNS(ns, "text");
      took.setAttribute("x", x + w + 4); took.setAttribute("y", i * row + 13); took.textContent = duration(n.duration_s);
      svg.append(name, bar, took);
    });
    box.replaceChildren(nodes.length ? svg : el("p", { class: "muted" }, "Nothing has started yet."));
  }

  // -- items: a node opened level by level ---------------------------------------------------

  function filters() {
    const status = document.getElementById("f-status").value;
    return { status, from: document.getElementById("f-from").value, to: document.getElementById("f-to").value,
      q: document.getElementById("f-text").value, sort: document.getElementById("f-sort").value,
      desc: document.getElementById("f-desc").checked ? "true" : "" };
  }

  function openItems(crumbs, offset = 0) {
    const before = state.items ? state.items.crumbs.join("|") : "";
    if (before && before !== crumbs.join("|")) clearFilters();
    state.items = { crumbs, offset };
    document.getElementById("items").hidden = false;
    return loadItems();
  }

  async function loadItems() {
    if (!state.items) return;
    const { crumbs, offset } = state.items;
    const parent = crumbs[crumbs.length - 1];
    const asked = (state.itemsAsked = (state.itemsAsked || 0) + 1);
    const page = await api(`${RUN}/children?` + q({ parent, limit: PAGE, offset, ...filters() }));
    if (asked !== state.itemsAsked) return; // a later request owns the table
    const seen = JSON.stringify([crumbs, offset, page]);
    if (seen === state.itemsShown) return; // nothing changed: leave the DOM alone
    state.itemsShown = seen;
    document.getElementById("crumbs").replaceChildren(...crumbs.map((c, i) => i === crumbs.length - 1
      ? el("b", {}, c) : el("a", { href: "#", onclick: (e) => { e.preventDefault(); openItems(crumbs.slice(0, i + 1)); } }, c, " ›")),
    el("span", { class: "muted" }, Object.entries(page.counts).map(([k, v]) => `${k} ${v.toLocaleString()}`).join(" · ")));
    const rows = page.items.map((n) => el("tr", { "data-path": n.path, onclick: () => {
      if (CONTAINERS.has(n.kind)) openItems([...crumbs, n.path]);
      openPanel(n.path, n);
    } },
    el("td", {}, n.index ?? ""), el("td", { class: "mono" }, n.path), el("td", { class: "mono" }, n.item || ""),
    el("td", {}, badge(n.status)), el("td", {}, Object.entries(n.children).map(([k, v]) => `${k} ${v}`).join(", ")),
    el("td", {}, n.attempts || ""), el("td", {}, duration(n.duration_s)), el("td", {}, n.error || n.reason || "")));
    document.querySelector("#item-table tbody").replaceChildren(...rows);
    const last = Math.min(offset + PAGE, page.total);
    document.getElementById("item-pager").replaceChildren(
      el("button", { type: "button", disabled: offset === 0, onclick: () => openItems(crumbs, Math.max(0, offset - PAGE)) }, "‹ prev"),
      el("span", { "data-total": page.total }, page.total ? `${(offset + 1).toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()}` : "none"),
      el("button", { type: "button", disabled: last >= page.total, onclick: () => openItems(crumbs, offset + PAGE) }, "next ›"),
      el("label", {}, "go to ", el("input", { type: "number", min: 1, size: 7, onchange: (e) => {
        // An item past the last one opens the last page (not an empty page "4,901–150 of 150").
        const lastPage = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
        openItems(crumbs, Math.min(lastPage, Math.max(0, Math.floor((e.target.value - 1) / PAGE) * PAGE)));
      } })));
  }

  function clearFilters() {
    for (const id of ["f-status", "f-from", "f-to", "f-text"]) document.getElementById(id).value = "";
    document.getElementById("f-sort").value = "index";
    document.getElementById("f-desc").checked = false;
  }

  /** Fit the graph again when the panel beside it opens or closes. */
  function refit() {
    if (state.cy) { state.cy.resize(); state.cy.fit(undefined, 24); }
  }

  document.getElementById("timeline-box").addEventListener("toggle", (event) => {
    if (event.target.open && state.summary) renderTimeline(state.summary);
  });

  for (const id of ["f-status", "f-from", "f-to", "f-text", "f-sort", "f-desc"]) {
    // A refused filter (an index that is not a whole number >= 0) says so; the table
    // empties rather than keeping rows of the previous filter.
    document.getElementById(id).addEventListener("change", () => state.items && openItems(state.items.crumbs).catch((e) => {
      banner(`Filter refused: ${e.message}`, true);
      document.querySelector("#item-table tbody")?.replaceChildren();
      state.itemsShown = null;  // the next answer is drawn, even one equal to the last
    }));
  }

  // -- the step panel ------------------------------------------------------------------------

  async function openPanel(path, node) {
    if (state.panel !== path) state.logQuery = "";
    state.panel = path; state.logAfter = null;
    const panel = document.getElementById("panel");
    if (panel.hidden) { panel.hidden = false; refit(); }
    if (node && node.started === false) {
      panel.dataset.seen = "";
      panel.replaceChildren(closeButton(), el("h2", {}, path), badge("pending"), el("p", { class: "muted" }, "Not started yet."));
      return;
    }
    await loadPanel();
  }

  /** Replace a node's children with these (nested arrays flattened, nulls left out). */
  const fill = (node, ...children) => node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));

  const closeButton = () => el("button", { type: "button", class: "close", onclick: () => {
    state.panel = null; document.getElementById("panel").hidden = true; refit(); } }, "×");

  async function loadPanel() {
    const path = state.panel;
    if (!path) return;
    const detail = await api(`${RUN}/step?` + q({ path }));
    const held = detail.step.status === "paused" ? await api(`${RUN}/paused?` + q({ path })) : [];
    if (state.panel !== path) return;
    const s = detail.step;
    const panel = document.getElementById("panel");
    // Nothing but the clock moved: leave the panel (and its open previews) alone.
    const seen = JSON.stringify({ ...detail, held, step: { ...s, duration_s: 0, attempt_list: s.attempt_list.map((a) => ({ ...a, duration_s: 0 })) },
      progress: detail.progress ? { ...detail.progress, eta_s: 0 } : null });
    if (panel.dataset.path === path && panel.dataset.seen === seen) return;
    panel.dataset.seen = seen;
    const logBox = panel.querySelector(".logs");
    const keepLogs = logBox && panel.dataset.path === path ? logBox : null;
    panel.dataset.path = path;
    fill(panel, closeButton(),
      el("h2", { class: "mono" }, path), badge(s.status), ` ${s.kind}`, s.reason ? el("p", { class: "muted" }, s.reason) : null,
      el("dl", { class: "kv" },
        el("dt", {}, "started"), el("dd", {}, when(s.started_at) || "—"), el("dt", {}, "duration"), el("dd", {}, duration(s.duration_s) || "—"),
        detail.parent ? [el("dt", {}, "in"), el("dd", { class: "mono" }, detail.parent)] : null,
        detail.item !== null ? [el("dt", {}, "item"), el("dd", { class: "mono" }, JSON.stringify(detail.item))] : null,
        el("dt", {}, "cache"), el("dd", {}, detail.cached_from ? `reused from run ${detail.cached_from}` : detail.cache_key ? `executed (key ${detail.cache_key.slice(0, 12)}…)` : "not cached",
          s.kind === "task" ? [" ", el("button", { type: "button", class: "link-button", "data-explain": path, onclick: () => explain(path) }, "explain")] : null),
        Object.keys(s.children).length ? [el("dt", {}, "children"), el("dd", {}, Object.entries(s.children).map(([k, v]) => `${k} ${v}`).join(", "))] : null),
      progressBlock(detail.progress),
      inputsBlock(detail.inputs),
      heldBlock(path, held[0]),
      waitBlock(path, s, detail.wait),
      el("div", { class: "explain", "data-explained": path, hidden: true }),
      stepActions(s),
      s.error ? [el("h2", {}, "Error"), el("pre", {}, `${s.error.type}: ${s.error.message}\n${s.error.traceback || ""}`)] : null,
      s.attempt_list.length ? [el("h2", {}, "Attempts"), el("table", { class: "grid" }, el("tbody", {}, s.attempt_list.map((a) => el("tr", {},
        el("td", {}, `#${a.number}`), el("td", {}, badge(a.status)), el("td", {}, duration(a.duration_s)), el("td", {}, a.worker),
        el("td", {}, a.error ? el("details", {}, el("summary", {}, `${a.error.type}: ${a.error.message.split("\n")[0]}`), el("pre", {}, a.error.traceback || a.error.message)) : "")))))] : null,
      Object.keys(s.outputs).length ? [el("h2", {}, "Outputs"), el("dl", { class: "kv" }, Object.entries(s.outputs).flatMap(([k, o]) => [el("dt", {}, k),
        el("dd", { "data-output": k }, el("span", { class: "mono" }, o.kind === "value" ? JSON.stringify(o.value) : o.kind === "artifact" ? `${o.type || "artifact"} ${o.serializer} ${o.size} B ${o.hash.slice(0, 12)}…` : `${o.kind} of ${o.items}`),
          o.kind === "artifact" ? [" ", el("button", { type: "button", class: "link-button", "data-preview": k, onclick: (e) => showPreview(path, k, e.target.parentNode) }, "preview"),
            " ", el("button", { type: "button", class: "link-button", "data-lineage": k, onclick: (e) => showLineage(path, k, e.target.parentNode) }, "lineage")] : null)]))] : null,
      metricsBlock(detail.metrics, detail.metrics_truncated),
      s.kind === "task" ? [el("h2", {}, "Logs ", el("input", { type: "search", placeholder: "search", class: "log-search", value: state.logQuery || null,
        onchange: (e) => { state.logQuery = e.target.value; state.logAfter = null; loadLogs(true); } })),
        keepLogs || el("div", { class: "logs", "data-log": path })] : null);
    if (s.kind === "task" && !keepLogs) await loadLogs(true);
  }

  /** A task's inputs: where each comes from (a run parameter, an upstream step's output, a
   *  foreach item, a constant, an expression) and what it resolved to (values cut short by
   *  the API; an artifact by type, size and hash, with a preview of the upstream output). */
  function inputsBlock(inputs) {
    if (!inputs || !inputs.length) return null;
    const origin = (i) => i.step
      ? el("a", { href: "#", "data-input-step": i.step, onclick: (e) => { e.preventDefault(); openPanel(i.step).catch(() => {}); } },
        i.step + (i.output ? `.${i.output}` : ""))
      : i.param ? el("span", { "data-input-param": i.param }, `parameter ${i.param}`) : el("span", { class: "muted" }, i.kind);
    const value = (i) => {
      if (i.error) return el("span", { class: "muted" }, i.error);
      if (i.value && i.value.kind === "artifact") {
        return [valueText(i.value), i.step ? [" ", el("button", { type: "button", class: "link-button", "data-input-preview": i.name,
          onclick: (e) => showPreview(i.step, i.output, e.target.parentNode) }, "preview")] : null];
      }
      return [i.preview ?? "", i.truncated ? el("small", { class: "muted" }, " (cut short)") : null];
    };
    return [el("h2", {}, "Inputs"), el("table", { class: "grid inputs" }, el("tbody", {}, inputs.map((i) => el("tr", { "data-input": i.name },
      el("td", {}, i.name), el("td", {}, origin(i), el("div", { class: "mono muted" }, i.source)),
      el("td", { class: "mono", "data-input-value": i.name }, value(i))))))];
  }

  function progressBlock(p) {
    if (!p || p.fraction === null && !p.message) return null;
    const pct = p.fraction === null ? null : Math.round(p.fraction * 1000) / 10;
    const what = [pct === null ? null : `${pct}%`, p.total ? `${p.done.toLocaleString()} of ${p.total.toLocaleString()} done` : null,
      p.message || null, p.eta_s !== null && p.eta_s !== undefined ? `about ${duration(p.eta_s)} left` : null].filter(Boolean).join(" · ");
    return el("div", { class: "progress-box", "data-progress": pct ?? "" },
      pct === null ? null : el("div", { class: "progress" }, el("span", { style: `width: ${pct}%` })), el("small", {}, what));
  }

  async function explain(path) {
    const box = document.querySelector(`#panel [data-explained="${CSS.escape(path)}"]`);
    if (!box) return;
    try {
      const why = await api(`${RUN}/explain?` + q({ path }));
      fill(box, el("h2", {}, "Cache decision: ", el("span", { "data-verdict": why.verdict }, why.verdict)), el("p", {}, why.message),
        why.source ? el("p", {}, "reused from ", runLink(why.source)) : null,
        why.changes.length ? el("table", { class: "grid" }, el("tbody", {}, why.changes.map((c) => el("tr", {},
          el("td", {}, c.component), el("td", { class: "mono" }, JSON.stringify(c.old)), el("td", { class: "mono" }, JSON.stringify(c.new)))))) : null,
        why.param_changes.length ? el("p", {}, "parameters changed: ", why.param_changes.map((c) => `${c.name} ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join(", ")) : null,
        why.not_covered.length ? el("p", { class: "muted" }, "not covered by the fingerprint: ", why.not_covered.join(", ")) : null);
      box.hidden = false;
    } catch (e) { banner(`Explain failed: ${e.message}`, true); }
  }

  /** A link to a step of a run given as ``run:path`` (or a run id). */
  function runLink(source) {
    const [run, ...rest] = source.split(":");
    const step = rest.join(":");
    return el("a", { class: "mono", href: `/ui/runs/${encodeURIComponent(run)}` + (step ? `?step=${encodeURIComponent(step)}` : "") }, source);
  }

  async function showPreview(path, output, where) {
    const old = where.querySelector(".preview");
    if (old) { old.remove(); return; }
    const box = el("div", { class: "preview", "data-preview-of": output }, "loading…");
    where.append(box);
    try {
      const p = await api(`${RUN}/preview?` + q({ path, output }));
      if (p.kind === "table") {
        fill(box, el("table", { class: "grid" }, el("thead", {}, el("tr", {}, p.columns.map((c) => el("th", {}, c)))),
          el("tbody", {}, p.rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v === null ? "" : String(v))))))),
        el("small", { class: "muted" }, `${p.rows.length} of ${(p.total_rows ?? p.rows.length).toLocaleString()} rows`, p.message ? ` · ${p.message}` : ""));
      } else if (p.kind === "image") {
        fill(box, el("img", { src: `data:${p.media_type};base64,${p.data}`, alt: p.name || output }));
      } else if (p.kind === "html") {
        const frame = el("iframe", { sandbox: "", title: p.name || output });
        frame.srcdoc = p.data; // sandboxed: no scripts, no same-origin access
        fill(box, frame);
      } else if (p.kind === "text") {
        fill(box, el("pre", {}, p.data), p.message ? el("small", { class: "muted" }, p.message) : null);
      } else if (p.kind === "value") {
        fill(box, el("pre", {}, JSON.stringify(p.value, null, 2)));
      } else fill(box, el("span", { class: "muted" }, p.message || "no preview"));
    } catch (e) { fill(box, el("span", { class: "muted" }, `no preview: ${e.message}`)); }
  }

  async function showLineage(path, output, where) {
    const old = where.querySelector(".lineage");
    if (old) { old.remove(); return; }
    const box = el("div", { class: "lineage", "data-lineage-of": output }, "loading…");
    where.append(box);
    try {
      const l = await api(`${RUN}/lineage?` + q({ path, output }));
      const made = l.sources.flatMap((s) => s.producers.slice(0, 3).map((p) => el("li", {}, runLink(`${p.run_id}:${p.path}`), ` ${p.output}`)));
      const used = l.consumers.map((c) => el("li", {}, runLink(`${c.run_id}:${c.path}`), c.output ? ` → ${c.output}` : ""));
      fill(box, el("b", {}, "made from"), el("ul", { class: "plain", "data-made-from": "" }, made.length ? made : el("li", { class: "muted" }, "no tracked input")),
        el("b", {}, "used by"), el("ul", { class: "plain", "data-used-by": "" }, used.length ? used : el("li", { class: "muted" }, "no step yet")));
    } catch (e) { fill(box, el("span", { class: "muted" }, `no lineage: ${e.message}`)); }
  }

  function metricsBlock(metrics, truncated) {
    // The server sends a step's last values (a cached step: those it reused), so each
    // metric's last value is its latest; the sparkline shows those values.
    if (!metrics.length) return null;
    const byName = {};
    for (const m of metrics) (byName[m.name] ||= []).push(m.value);
    const reused = metrics[0].reused_from ? el("p", { class: "muted" }, `reused from ${metrics[0].reused_from}`) : null;
    const cut = truncated ? el("p", { class: "muted" }, `the last ${metrics.length.toLocaleString()} values; all of them: GET /runs/RUN/metrics`) : null;
    return [el("h2", {}, "Metrics"), reused, el("table", { class: "grid" }, el("tbody", {}, Object.entries(byName).map(([k, values]) =>
      el("tr", {}, el("td", {}, k), el("td", {}, String(values[values.length - 1])), el("td", {}, sparkline(values)))))), cut];
  }

  async function loadLogs(reset) {
    const path = state.panel;
    const box = document.querySelector(`#panel .logs`);
    if (!box || !path) return;
    // The query typed in (kept in state: the panel redraws its search box when the step moves).
    const params = { path, limit: 200, q: state.logQuery || "" };
    if (!reset && state.logAfter !== null) params.after = state.logAfter;
    const window = await api(`${RUN}/log?` + q(params));
    if (state.panel !== path) return;
    if (reset) box.replaceChildren();
    for (const line of window.lines) box.append(el("div", { class: line.stream }, line.text));
    if (window.lines.length) state.logAfter = window.lines[window.lines.length - 1].id;
    else if (reset) state.logAfter = 0;
    box.scrollTop = box.scrollHeight;
  }

  // What a skip in an active run does, by the API's answer (``how``), as `kaon skip` says it;
  // in a finished run ("recorded") the page restarts the run from there.
  const SKIPPED = {
    command: (path) => `Skipping ${path}: the run's engine skips it now`,
    queued: (path) => `${path} will be skipped when the run resumes (no engine drives it now)`,
  };

  function stepActions(s) {
    // Kill one step while the run is active (also paused: other branches go on) and the step is not done.
    const active = state.summary && ["pending", "running", "paused"].includes(state.summary.status)
      && !["succeeded", "failed", "cancelled", "skipped", "cached"].includes(s.status);
    const frame = ["item", "iteration"].includes(s.kind);
    // Retrying an item or iteration runs only it (and what depends on it): other failed
    // items stay failed (only: true); "Restart from here" also reruns the run's failed steps.
    const restart = (title, detail, only = false) => confirmAction(title, detail, async (_, force) => {
      await api(`${RUN}/restart`, { method: "POST", body: { from_step: s.path, force, only } }); banner(`${title}: done${force ? " (forced)" : ""}`); refresh(); },
    null, { check: "force: execute again without a cache lookup" });
    return el("div", { class: "actions" },
      frame ? el("button", { type: "button", "data-step-action": "retry-item", onclick: () => restart(`Retry ${s.path}`,
        "Run this item again (and what depends on it), reusing every other item.", true) }, s.kind === "item" ? "Retry this item" : "Retry this iteration") : null,
      el("button", { type: "button", "data-step-action": "restart", onclick: () => restart(`Restart from ${s.path}`,
        "Run this step and what follows it again, reusing the rest.") }, "Restart from here"),
      // An item or iteration is no step to skip (the server refuses it): skip a step inside it.
      frame ? null : el("button", { type: "button", "data-step-action": "skip", onclick: () => confirmAction(`Skip ${s.path}`,
        "Mark the step skipped; give an output value (JSON) for its successors, or leave it empty. A finished run goes on from there.", async (value) => {
          const body = { path: s.path };
          if (value) { body.output = JSON.parse(value); body.has_output = true; }
          const result = await api(`${RUN}/skip`, { method: "POST", body });
          if (result.how === "recorded") {  // a finished run goes on from there, as `kaon skip` does
            await api(`${RUN}/restart`, { method: "POST", body: {} });
            banner(`Skipped ${s.path}; the run goes on from there`);
          } else banner(SKIPPED[result.how]?.(s.path) ?? `Skip of ${s.path}: ${result.how}`);
          refresh(); }, "output (JSON, optional)") }, "Skip"),
      active ? el("button", { type: "button", class: "danger", "data-step-action": "kill", onclick: () => confirmAction(`Kill ${s.path}`,
        "Cancel this step.", async () => { await api(`${RUN}/kill`, { method: "POST", body: { step: s.path } }); banner(`Killed ${s.path}`); refresh(); }) }, "Kill step") : null);
  }

  // -- breakpoints: what a held step holds, continue ------------------------------------------

  /** A value as the API describes it (inline, or a blob by type, size and hash). */
  const valueText = (o) => o.kind === "value" ? JSON.stringify(o.value)
    : o.kind === "artifact" ? `${o.type || "artifact"} ${o.serializer} ${o.size} B ${o.hash.slice(0, 12)}…` : `${o.kind} of ${o.items}`;

  /** What a step held at a breakpoint holds (the inputs it would receive, or the outputs it
   *  produced and has not passed on), with the continue actions. */
  function heldBlock(path, held) {
    if (!held) return null;
    const before = held.moment === "before";
    const values = Object.entries(before ? held.inputs : held.outputs);
    return el("div", { class: "held", "data-held": held.moment },
      el("h2", {}, before ? "Paused before this step" : "Paused after this step"),
      el("p", { class: "muted" }, before ? "It has not started; these are the inputs it would receive."
        : "It ran; these outputs are recorded and nothing downstream has them yet."),
      values.length ? el("dl", { class: "kv" }, values.flatMap(([k, o]) => [el("dt", {}, k), el("dd", { class: "mono", "data-held-value": k }, valueText(o))]))
        : el("p", { class: "muted" }, before ? "No inputs." : "No outputs."),
      el("div", { class: "actions" },
        el("button", { type: "button", "data-continue": "step", onclick: () => continueRun(path) }, "Continue this step"),
        el("button", { type: "button", "data-continue": "all", onclick: () => continueRun(null) }, "Continue all")));
  }

  /** A waiting wait step: the signal it waits for, and a button that sends it (operator),
   *  with parameters (JSON) for its condition; the signal reaches every step and trigger
   *  that waits for that name, as ``kaon signal`` does. */
  function waitBlock(path, s, wait) {
    if (!wait) return null;
    return el("div", { class: "wait", "data-wait": wait.signal },
      el("p", {}, "Waits for signal ", el("b", { class: "mono" }, wait.signal),
        wait.match ? [" where ", el("code", {}, wait.match)] : null),
      s.status === "waiting" ? el("div", { class: "actions" }, el("button", { type: "button", "data-send-signal": wait.signal,
        onclick: () => confirmAction(`Send signal ${wait.signal}`,
          "Every step and trigger waiting for this signal sees it (its parameters must meet their conditions).",
          async (text) => {
            const params = text && text.trim() ? JSON.parse(text) : {};
            if (params === null || typeof params !== "object" || Array.isArray(params)) throw new Error("parameters must be a JSON object");
            const sent = await api("/signals", { method: "POST", body: { name: wait.signal, params } });
            banner(`Sent signal ${wait.signal} (#${sent.id})`);
            refresh();
          }, "parameters (JSON object, optional), e.g. {\"region\": \"eu\"}") }, "Send signal")) : null);
  }

  /** Release the held steps (``path``: that one only), with parameters changed if given. */
  function continueRun(path) {
    const what = path ? `Continue ${path}` : "Continue the run";
    confirmAction(what, (path ? "Release this step only; other held steps stay paused."
      : "Release every step held at a breakpoint.") + " Parameters given here replace the run's for what has not run yet.",
    async (text) => {
      const params = text && text.trim() ? JSON.parse(text) : {};
      if (params === null || typeof params !== "object" || Array.isArray(params)) throw new Error("parameters must be a JSON object");
      await api(`${RUN}/continue`, { method: "POST", body: path ? { path, params } : { params } });
      banner(`${what}: done`);
      refresh();
    }, "parameters (JSON object, optional), e.g. {\"k\": 3}");
  }

  document.getElementById("continue-run").addEventListener("click", () => continueRun(null));

  // -- run actions ---------------------------------------------------------------------------

  const RUN_ACTIONS = {
    kill: ["Kill this run", "Running steps are stopped and pending ones will not start."],
    restart: ["Restart from failed steps", "Failed, cancelled and skipped steps run again; the rest is reused.", "force: execute them without a cache lookup"],
    resume: ["Resume this run", "Hand the run to this server's engine if its engine died."],
  };
  for (const button of document.querySelectorAll("[data-action]")) {
    const action = button.dataset.action;
    const [title, detail, check] = RUN_ACTIONS[action];
    button.addEventListener("click", () => confirmAction(title, detail, async (_, force) => {
      const run = await api(`${RUN}/${action}`, { method: "POST", body: check && force ? { force: true } : {} });
      banner(`${title}: the run is ${run.status}`);
      refresh();
    }, null, { check }));
  }

  // -- who did what --------------------------------------------------------------------------

  async function loadAudit() {
    const entries = await auditTail(`${RUN}/audit`).catch(() => null);
    if (!entries) return;
    const shown = JSON.stringify(entries.map((a) => a.id));
    if (shown === state.auditShown) return;
    state.auditShown = shown;
    document.querySelector("#run-audit tbody").replaceChildren(...auditRows(entries));
  }

  // -- live ----------------------------------------------------------------------------------

  async function refresh() {
    if (state.refreshing) { state.again = true; return; }
    state.refreshing = true;
    try {
      const summary = await loadSummary();
      if (state.items) await loadItems();
      else openFirstContainer(summary);
      if (state.panel) { await loadPanel(); await loadLogs(false); }
      await loadAudit();
    } catch (e) { banner(`Could not refresh: ${e.message}`, true); }
    finally {
      state.refreshing = false;
      if (state.again) { state.again = false; setTimeout(refresh, 300); }
    }
  }

  let timer = null;
  const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 400); };

  function follow(after) {
    const live = document.getElementById("live");
    let last = after;  // the last event seen: where a stream opened anew starts
    const seen = (event) => { if (event.lastEventId) last = Number(event.lastEventId) || last; soon(); };
    const url = () => `/events?` + q({ run_id: runId, after: last });
    let source = null;
    let checking = false;
    function open() {
      source = new EventSource(url());
      for (const kind of ["run", "step", "progress", "action", "attempt", "output", "log", "metric", "command"]) source.addEventListener(kind, seen);
      // The engine applies a step command in its own turn; a refusal it finds then (the step
      // finished meanwhile) is an event: shown, as the answer to the click was already "sent".
      source.addEventListener("command_rejected", (event) => {
        const data = JSON.parse(event.data).data || {};
        banner(`The engine refused ${data.command || "a command"}${data.path ? ` of ${data.path}` : ""}: ${data.error || "no reason given"}`, true);
        seen(event);
      });
      source.onmessage = seen;
      source.onopen = () => { live.className = "live on"; live.textContent = "live"; };
      source.onerror = () => { live.className = "live"; live.textContent = "reconnecting…"; check(); };
    }
    // Why the stream failed: a session that ended logs in again (streamRefusal), a refusal
    // stops the stream and says so; else the browser retries, or the page reopens a stream
    // the browser gave up on (a refused request, as a server error, ends an EventSource).
    async function check() {
      if (checking) return;
      checking = true;
      try {
        const refused = await Kaon.streamRefusal(url());
        if (refused && [401, 403, 404].includes(refused.status)) {
          source.close();
          live.className = "live";
          live.textContent = refused.status === 401 ? "signed out" : "stopped";
          if (refused.status !== 401) banner(`Live updates stopped: ${refused.message}`, true);
        } else if (source.readyState === EventSource.CLOSED) {
          setTimeout(() => { if (source.readyState === EventSource.CLOSED) open(); }, 3000);
        }
      } finally { checking = false; }
    }
    open();
    setInterval(() => { if (state.panel && state.summary && ["pending", "running"].includes(state.summary.status)) loadLogs(false).catch(() => {}); }, 1500);
    // A step that runs for minutes sends no event meanwhile: the run's clock ticks here (the
    // summary's duration plus the time since it was read), not only when an event comes.
    setInterval(() => {
      const s = state.summary;
      const fact = document.querySelector("#run-facts [data-fact=duration]");
      if (!s || s.ended_at || !s.started_at || !fact) return;
      fact.textContent = duration((s.duration_s ?? 0) + (Date.now() - state.summaryAt) / 1000);
    }, 1000);
  }

  /** A run opens on the items of its first foreach (or loop) once it has any. */
  function openFirstContainer(summary) {
    const container = summary.nodes.find((n) => CONTAINERS.has(n.kind) && n.started);
    return container ? openItems([container.path]).catch(() => {}) : Promise.resolve();
  }

  // First paint: the summary, then at once the first page of items (while the graph is laid
  // out); the event stream and the activity only after that page is shown.
  let firstItems = Promise.resolve();
  loadSummary((s) => { firstItems = openFirstContainer(s); }).then(async (s) => {
    await firstItems;
    follow(s.last_event_id);
    loadAudit();
    const asked = new URLSearchParams(location.search).get("step");
    if (asked) openPanel(asked).catch((e) => banner(`No step ${asked}: ${e.message}`, true));
  }).catch((e) => banner(`Could not load run ${runId}: ${e.message}`, true));
})();
