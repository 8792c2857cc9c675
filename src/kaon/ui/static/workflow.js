/* A workflow page: properties, triggers, versions (activate), run history, start a run. */
"use strict";
(() => {
  const { api, el, badge, when, runDuration, banner, refusal, confirmAction, q } = Kaon;
  const name = document.getElementById("workflow").dataset.workflow;
  const base = `/workflows/${encodeURIComponent(name)}`;
  let offset = 0;
  const LIMIT = 25;

  async function load() {
    const [wf, versions, triggers] = await Promise.all([
      api(base), api(`${base}/versions`), api("/triggers?" + q({ workflow: name })).catch(() => [])]);
    const props = document.getElementById("props");
    props.replaceChildren(el("dt", {}, "owner"), el("dd", {}, wf.owner_group || "—"),
      el("dt", {}, "active version"), el("dd", {}, wf.active_version ? `v${wf.active_version}` : "none"),
      ...Object.entries(wf.properties).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, JSON.stringify(v))]));
    document.getElementById("triggers").replaceChildren(...(triggers.length ? triggers.map((t) =>
      el("li", {}, el("b", {}, t.kind), " ", t.description, t.next_due_at ? ` (next: ${when(t.next_due_at)})` : "")) : [el("li", { class: "muted" }, "manual only")]));
    const rows = document.querySelector("#versions tbody");
    rows.replaceChildren(...versions.slice().reverse().map((v) => el("tr", {},
      el("td", {}, `v${v.version}`, v.active ? " (active)" : ""), el("td", {}, when(v.created_at)),
      el("td", {}, v.created_by), el("td", { class: "mono" }, v.source_name),
      el("td", {}, v.active ? "" : el("button", { type: "button", onclick: () => confirmAction(
        `Activate v${v.version}`, `New runs of ${name} will use version ${v.version}.`,
        async () => { await api(`${base}/activate`, { method: "POST", body: { version: v.version } }); banner(`v${v.version} is active`); load(); }) }, "Activate")))));
  }

  async function loadRuns() {
    const status = document.getElementById("run-status").value;
    const runs = await api("/runs?" + q({ workflow: name, status, limit: LIMIT, offset }));
    document.querySelector("#runs tbody").replaceChildren(...runs.map((r) => el("tr", {},
      el("td", {}, el("input", { type: "checkbox", value: r.id, class: "pick" })),
      el("td", {}, el("a", { class: "mono", href: `/ui/runs/${r.id}` }, r.id)),
      el("td", {}, badge(r.status)), el("td", { class: "mono" }, JSON.stringify(r.params).slice(0, 80)),
      el("td", {}, when(r.created_at)), el("td", {}, runDuration(r)))));
    const pager = document.getElementById("runs-pager");
    pager.replaceChildren(
      el("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - LIMIT); loadRuns(); } }, "‹ newer"),
      el("span", {}, `${offset + 1}–${offset + runs.length}`),
      el("button", { type: "button", disabled: runs.length < LIMIT, onclick: () => { offset += LIMIT; loadRuns(); } }, "older ›"));
  }

  document.getElementById("run-status").addEventListener("change", () => { offset = 0; loadRuns(); });
  document.getElementById("compare-selected").addEventListener("click", () => {
    const ids = [...document.querySelectorAll(".pick:checked")].map((c) => c.value);
    location.href = "/ui/compare?" + q({ runs: ids.join(",") });
  });
  document.getElementById("start").addEventListener("submit", (event) => {
    event.preventDefault();
    let params;
    try { params = JSON.parse(event.target.params.value || "{}"); } catch (e) { banner("Parameters must be a JSON object", true); return; }
    confirmAction(`Start ${name}`, `Start a run with ${JSON.stringify(params)}.`, async () => {
      const run = await api("/runs", { method: "POST", body: { workflow: name, params } });
      location.href = `/ui/runs/${run.id}`;
    });
  });
  load().catch((e) => banner(`Could not load ${name}: ${e.message}`, true));
  loadRuns().catch((e) => banner(refusal(e, "Listing runs"), true));
})();
