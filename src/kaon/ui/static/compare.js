/* Compare runs side by side: parameters, status, duration, task counts, each step. */
"use strict";
(async () => {
  const { api, el, badge, duration, runDuration, banner } = Kaon;
  const box = document.getElementById("compare");
  const ids = (box.dataset.runs || "").split(",").filter(Boolean);
  if (ids.length < 2) { box.append(el("p", { class: "muted" }, "Give two or more run ids (or tick runs on a workflow page).")); return; }
  /** A small bar chart of one metric across the runs (SVG). */
  function bars(values) {
    const ns = "http://www.w3.org/2000/svg", w = 16, h = 28;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", values.length * (w + 4)); svg.setAttribute("height", h); svg.setAttribute("class", "spark");
    const top = Math.max(...values.filter((v) => v !== undefined).map(Math.abs), 1e-12);
    values.forEach((v, i) => {
      if (v === undefined) return;
      const bar = document.createElementNS(ns, "rect");
      const size = Math.max((Math.abs(v) / top) * (h - 2), 1);
      for (const [k, a] of Object.entries({ x: i * (w + 4), y: h - size, width: w, height: size, fill: "#3457d5" })) bar.setAttribute(k, a);
      svg.append(bar);
    });
    return svg;
  }

  try {
    const runs = await Promise.all(ids.map((id) => api(`/runs/${encodeURIComponent(id)}/summary`)));
    const head = el("tr", {}, el("th", {}, ""), ...runs.map((r) => el("th", {}, el("a", { class: "mono", href: `/ui/runs/${r.id}` }, r.id))));
    const rows = [];
    const row = (label, cells) => {
      const texts = cells.map((c) => (c instanceof Node ? c.textContent : String(c)));
      const differ = new Set(texts).size > 1;
      rows.push(el("tr", {}, el("th", {}, label), ...cells.map((c) => el("td", { class: differ ? "diff" : "" }, c))));
    };
    row("workflow", runs.map((r) => r.workflow));
    row("version", runs.map((r) => r.labels.version ?? ""));
    row("status", runs.map((r) => badge(r.status)));
    row("duration", runs.map((r) => runDuration(r)));
    row("started by", runs.map((r) => r.started_by || ""));
    const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
    for (const p of params) row(`param ${p}`, runs.map((r) => JSON.stringify(r.params[p])));
    const statuses = [...new Set(runs.flatMap((r) => Object.keys(r.tasks)))].sort();
    for (const s of statuses) row(`tasks ${s}`, runs.map((r) => r.tasks[s] || 0));
    const steps = [...new Set(runs.flatMap((r) => r.nodes.map((n) => n.path)))];
    for (const path of steps) {
      row(`step ${path}`, runs.map((r) => {
        const n = r.nodes.find((x) => x.path === path);
        if (!n) return "—";
        const kids = Object.entries(n.children).map(([k, v]) => `${k} ${v}`).join(", ");
        return el("span", {}, badge(n.status), " ", duration(n.duration_s), kids ? ` (${kids})` : "");
      }));
    }
    // The server compares (GET /compare, as `kaon compare`) and pools each metric over a
    // foreach's items (each[*].train) into their mean, with how many reported: the page
    // reads those rows (one per group and metric), not every item's (limit=1).
    const query = ids.map((id) => `run=${encodeURIComponent(id)}`).join("&");
    const compared = await api(`/compare?${query}&limit=1`);
    const groups = [...compared.groups].sort((a, b) => `${a.group} ${a.name}`.localeCompare(`${b.group} ${b.name}`)).slice(0, 200);
    for (const g of groups) {
      const values = compared.runs.map((r) => (g.count[r.id] ? { mean: g.mean[r.id], n: g.count[r.id] } : undefined));
      row(`metric ${g.group} ${g.name}`, values.map((v) => (v === undefined ? "—" : `${Number(v.mean.toPrecision(6))}${v.n > 1 ? ` (mean of ${v.n})` : ""}`)));
      rows[rows.length - 1].append(el("td", {}, bars(values.map((v) => v && v.mean))));
    }
    box.append(el("table", { class: "grid cmp" }, el("thead", {}, head), el("tbody", {}, rows)));
  } catch (e) { banner(`Could not compare: ${e.message}`, true); }
})();
