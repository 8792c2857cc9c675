/* The workflows page: each workflow with owner, active version, triggers, last runs. */
"use strict";
(async () => {
  const { api, el, badge, when, runDuration, banner, q } = Kaon;
  const body = document.querySelector("#workflows tbody");
  try {
    const [workflows, triggers] = await Promise.all([api("/workflows"), api("/triggers").catch(() => [])]);
    body.replaceChildren();
    if (!workflows.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No workflows yet: kaon push FILE")));
    for (const wf of workflows) {
      const mine = triggers.filter((t) => t.workflow === wf.name);
      const next = mine.map((t) => t.next_due_at).filter(Boolean).sort()[0];
      const strip = el("span", { class: "strip" });
      body.append(el("tr", { "data-workflow": wf.name, onclick: () => { location.href = `/ui/workflows/${encodeURIComponent(wf.name)}`; } },
        el("td", {}, el("a", { href: `/ui/workflows/${encodeURIComponent(wf.name)}` }, wf.name)),
        el("td", {}, wf.owner_group || ""),
        el("td", {}, wf.active_version ? `v${wf.active_version}` : "none"),
        el("td", {}, mine.map((t) => t.kind).join(", ")),
        el("td", {}, next ? when(next) : ""),
        el("td", {}, strip)));
      api("/runs?" + q({ workflow: wf.name, limit: 12 })).then((runs) => {
        for (const r of runs.reverse()) strip.append(el("a", { class: `s-${r.status}`, href: `/ui/runs/${r.id}`, title: `${r.id} ${r.status}` }));
      });
    }
    const recent = document.querySelector("#recent tbody");
    for (const r of await api("/runs?limit=20")) {
      recent.append(el("tr", { onclick: () => { location.href = `/ui/runs/${r.id}`; } },
        el("td", {}, el("a", { class: "mono", href: `/ui/runs/${r.id}` }, r.id)),
        el("td", {}, r.workflow), el("td", {}, badge(r.status)),
        el("td", {}, when(r.started_at || r.created_at)), el("td", {}, runDuration(r))));
    }
  } catch (e) { banner(`Could not load workflows: ${e.message}`, true); }
})();
