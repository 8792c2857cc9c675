/* The workflows page: each workflow with owner, active version, triggers, last runs.
 *
 * ``GET /workflows`` answers a page (100 by default): the table is paged the same way, one
 * more row asked for than shown to know whether another page follows, so a registry of any
 * size is listed whole, page by page, and never cut short without a word. */
"use strict";
(async () => {
  const { api, el, badge, when, runDuration, banner, q } = Kaon;
  const body = document.querySelector("#workflows tbody");
  const PAGE = 100;
  const triggersRead = api("/triggers").catch(() => []); // read once, with the first page

  async function loadPage(offset) {
    const asked = (loadPage.asked = (loadPage.asked || 0) + 1);
    const [found, triggers] = await Promise.all([api("/workflows?" + q({ limit: PAGE + 1, offset })), triggersRead]);
    if (asked !== loadPage.asked) return; // a later page owns the table
    const workflows = found.slice(0, PAGE);
    const more = found.length > PAGE;
    body.replaceChildren();
    if (!workflows.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, offset ? "No more workflows." : "No workflows yet: kaon push FILE")));
    }
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
      }).catch(() => {});
    }
    const first = offset + 1, last = offset + workflows.length;
    document.getElementById("workflows-pager").replaceChildren(
      el("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)) }, "‹ prev"),
      el("span", { "data-shown": workflows.length, "data-more": more ? "1" : "0" },
        workflows.length ? `${first.toLocaleString()}–${last.toLocaleString()}${more ? ", more on the next page" : ` of ${last.toLocaleString()}`}` : ""),
      el("button", { type: "button", disabled: !more, onclick: () => go(offset + PAGE) }, "next ›"));
  }

  const go = (offset) => loadPage(offset).catch((e) => banner(`Could not load workflows: ${e.message}`, true));

  try {
    await loadPage(0);
    const recent = document.querySelector("#recent tbody");
    for (const r of await api("/runs?limit=20")) {
      recent.append(el("tr", { onclick: () => { location.href = `/ui/runs/${r.id}`; } },
        el("td", {}, el("a", { class: "mono", href: `/ui/runs/${r.id}` }, r.id)),
        el("td", {}, r.workflow), el("td", {}, badge(r.status)),
        el("td", {}, when(r.started_at || r.created_at)), el("td", {}, runDuration(r))));
    }
  } catch (e) { banner(`Could not load workflows: ${e.message}`, true); }
})();
