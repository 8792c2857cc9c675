"""Reads that cost what they show, over the API: summary, pages of items, one step, logs."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.service.run_reads import RunReads
from kaon.store.reads import StepQuery

FLOW = """name: fan
params:
  n: {type: int, default: 12}
steps:
  - id: numbers
    shell: "echo ::kaon::output items=$(seq -s, 0 $((KAON_INPUT_N - 1)) | sed 's/.*/[&]/')"
    inputs: {n: "${{ params.n }}"}
  - id: each
    foreach: "${{ steps.numbers.items }}"
    steps:
      - id: square
        shell: "echo item-$KAON_INDEX; echo ::kaon::metric loss=$KAON_INDEX; test $KAON_INDEX -ne 5"
        on_failure: ignore
  - id: after
    needs: [each]
    trigger_rule: all_done
    shell: echo done
"""


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def run_id(client: Any, tokens: dict[str, str], services: Services) -> str:
    body = {"source": FLOW, "file_name": "fan.yaml"}
    assert client.post("/workflows", json=body, headers=h(tokens["owner"])).status_code < 300
    run = client.post("/runs", json={"workflow": "fan"}, headers=h(tokens["operator"])).json()
    services.runs.execute(run["id"])
    return str(run["id"])


def test_summary_rolls_a_foreach_up_into_one_node(
    client: Any, tokens: dict[str, str], run_id: str
) -> None:
    summary = client.get(f"/runs/{run_id}/summary", headers=h(tokens["viewer"])).json()
    assert summary["tasks"] == {"failed": 1, "succeeded": 13}
    assert [n["path"] for n in summary["nodes"]] == ["numbers", "each", "after"]
    each = summary["nodes"][1]
    assert each["kind"] == "foreach" and each["children"] == {"succeeded": 12}
    assert {"source": "numbers", "target": "each"} in summary["edges"]
    assert {"source": "each", "target": "after"} in summary["edges"]
    assert summary["started_by"] == "operator"


def test_get_run_is_a_bounded_page_of_the_top_level(
    client: Any, tokens: dict[str, str], run_id: str
) -> None:
    get = lambda **q: client.get(  # noqa: E731
        f"/runs/{run_id}", params=q, headers=h(tokens["viewer"])
    ).json()
    detail = get()
    # The failed item is counted, not listed: items page through /children.
    assert [s["path"] for s in detail["steps"]] == ["numbers", "each", "after"]
    assert detail["steps_total"] == 3 and detail["tasks"] == {"failed": 1, "succeeded": 13}
    assert detail["steps"][1]["children"] == {"succeeded": 12}
    assert detail["steps"][0]["attempt_list"][0]["status"] == "succeeded"
    assert len(detail["metrics"]) == 12 and not detail["metrics_truncated"]
    assert {m["path"] for m in detail["metrics"]} == {f"each[{i}].square" for i in range(12)}
    assert [s["path"] for s in get(limit=1, offset=1)["steps"]] == ["each"]
    assert get(metrics_limit=2)["metrics_truncated"] is True
    everything = get(all_steps=True, limit=10, offset=20)
    assert everything["steps_total"] == 3 + 12 + 12 and len(everything["steps"]) == 7
    # The failed tasks of every level (what `kaon show --status failed` pages).
    failed = get(all_steps=True, status="failed", kind="task")
    assert [s["path"] for s in failed["steps"]] == ["each[5].square"]
    assert failed["steps_total"] == 1 and failed["steps"][0]["error"]["type"]
    assert get(status=["succeeded"], kind="task")["steps_total"] == 2  # top level: numbers, after
    bad = client.get(f"/runs/{run_id}", params={"kind": "nope"}, headers=h(tokens["viewer"]))
    assert bad.status_code == 422
    assert client.get(f"/runs/{run_id}", params={"limit": 0}).status_code == 401
    assert (
        client.get(f"/runs/{run_id}", params={"limit": 0}, headers=h(tokens["viewer"]))
    ).status_code == 422


def test_children_are_paged_filtered_and_sorted(
    client: Any, tokens: dict[str, str], run_id: str
) -> None:
    get = lambda **q: client.get(  # noqa: E731
        f"/runs/{run_id}/children", params={"parent": "each", **q}, headers=h(tokens["viewer"])
    )
    page = get(limit=5, offset=5).json()
    assert page["total"] == 12 and [i["index"] for i in page["items"]] == [5, 6, 7, 8, 9]
    assert page["counts"] == {"succeeded": 12}  # the failure of item 5 is ignored
    assert page["items"][0]["children"] == {"failed": 1}
    assert get(status="failed").json()["total"] == 0
    assert get(status=["failed", "succeeded"]).json()["total"] == 12
    ranged = get(**{"from": 3, "to": 4, "sort": "index", "desc": True}).json()
    assert [i["index"] for i in ranged["items"]] == [4, 3]
    assert get(q="each[1").json()["total"] == 3  # each[1], each[10], each[11]
    item = client.get(
        f"/runs/{run_id}/children", params={"parent": "each[5]"}, headers=h(tokens["viewer"])
    ).json()
    assert [i["path"] for i in item["items"]] == ["each[5].square"]
    assert get(sort="bogus").status_code == 422
    assert get(status="bogus").status_code == 422
    assert get(limit=0).status_code == 422
    assert (
        client.get(
            f"/runs/{run_id}/children", params={"parent": "ghost"}, headers=h(tokens["viewer"])
        ).status_code
        == 404
    )
    assert client.get(f"/runs/{run_id}/children").status_code == 401


def test_one_step_in_detail_and_log_windows(
    client: Any, tokens: dict[str, str], run_id: str
) -> None:
    step = client.get(
        f"/runs/{run_id}/step", params={"path": "each[5].square"}, headers=h(tokens["viewer"])
    ).json()
    assert step["step"]["status"] == "failed" and step["parent"] == "each[5]"
    assert step["step"]["attempt_list"][0]["error"]["type"]
    old_route = client.get(f"/runs/{run_id}/steps/each[5].square", headers=h(tokens["viewer"]))
    assert old_route.json()["status"] == "failed"
    log = client.get(
        f"/runs/{run_id}/log", params={"path": "each[5].square"}, headers=h(tokens["viewer"])
    ).json()
    assert [line["text"] for line in log["lines"]] == ["item-5"]
    first = log["lines"][0]["id"]
    after = client.get(
        f"/runs/{run_id}/log",
        params={"path": "each[5].square", "after": first},
        headers=h(tokens["viewer"]),
    ).json()
    assert after["lines"] == []
    missing = client.get(
        f"/runs/{run_id}/step", params={"path": "each[99]"}, headers=h(tokens["viewer"])
    )
    assert missing.status_code == 404


def test_store_pages_do_not_load_the_run(services: Services, run_id: str) -> None:
    reads = RunReads(services.store)
    each = services.store.get_step_run(run_id, "each")
    page = reads.reads.step_page(run_id, StepQuery(parent_id=each.id, limit=2, offset=10))
    assert page.total == 12 and [r.index for r in page.rows] == [10, 11]
    with pytest.raises(ValueError, match="unknown sort key"):
        StepQuery(sort="nope")
    tail = reads.reads.log_window(run_id, services.store.get_step_run(run_id, "after").id)
    assert [r.text for r in tail] == ["done"]


def test_run_metrics_cost_what_they_show(client: Any, tokens: dict[str, str], run_id: str) -> None:
    get = lambda **q: client.get(  # noqa: E731
        f"/runs/{run_id}/metrics", params=q, headers=h(tokens["viewer"])
    ).json()
    every = get()
    assert len(every) == 12 and {m["name"] for m in every} == {"loss"}
    assert {m["path"] for m in every} == {f"each[{i}].square" for i in range(12)}
    assert len(get(limit=3)) == 3 and get(name="other") == []
    step = client.get(
        f"/runs/{run_id}/steps/each[4].square/metrics", headers=h(tokens["viewer"])
    ).json()
    assert [(m["path"], m["value"]) for m in step] == [("each[4].square", 4.0)]


def test_a_run_wide_log_window_names_each_line_s_step(
    client: Any, tokens: dict[str, str], run_id: str
) -> None:
    every = client.get(f"/runs/{run_id}/log", headers=h(tokens["viewer"])).json()
    lines = [(line["path"], line["text"]) for line in every["lines"]]
    assert sorted(lines[:-1]) == sorted((f"each[{i}].square", f"item-{i}") for i in range(12))
    assert lines[-1] == ("after", "done")
    middle = every["lines"][5]["id"]
    rest = client.get(
        f"/runs/{run_id}/log", params={"after": middle, "limit": 3}, headers=h(tokens["viewer"])
    ).json()
    assert [line["id"] for line in rest["lines"]] == [x["id"] for x in every["lines"][6:9]]


WIRED = """name: wired
params:
  k: {type: int, default: 3}
  note: {type: str, default: ""}
steps:
  - id: prepare
    shell: "echo ::kaon::output rows=[1,2,3]; echo ::kaon::output size=3"
  - id: each
    foreach: "${{ steps.prepare.rows }}"
    steps:
      - id: fit
        shell: "true"
        inputs:
          row: "${{ item }}"
          k: "${{ params.k }}"
          rows: "${{ steps.prepare.rows }}"
          label: "model-${{ item }}"
          fixed: 7
  - id: last
    needs: [each]
    shell: "true"
    inputs: {size: "${{ steps.prepare.size }}", note: "${{ params.note }}"}
"""


def test_a_step_s_inputs_are_resolved_when_read(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Every task's inputs (not only a held one's), with where each comes from: the engine
    records nothing for them, the read resolves them from the definition and the rows."""
    body = {"source": WIRED, "file_name": "wired.yaml"}
    assert client.post("/workflows", json=body, headers=h(tokens["owner"])).status_code < 300
    note = "x" * 5000
    started = client.post(
        "/runs", json={"workflow": "wired", "params": {"note": note}}, headers=h(tokens["operator"])
    ).json()
    services.runs.execute(started["id"])

    def inputs(path: str) -> dict[str, dict[str, Any]]:
        step = client.get(
            f"/runs/{started['id']}/step", params={"path": path}, headers=h(tokens["viewer"])
        ).json()
        return {i["name"]: i for i in step["inputs"]}

    fit = inputs("each[1].fit")
    assert fit["row"]["kind"] == "variable" and fit["row"]["preview"] == "2"
    assert fit["k"]["kind"] == "param" and fit["k"]["param"] == "k"
    assert fit["k"]["source"] == "${{ params.k }}" and fit["k"]["preview"] == "3"
    rows = fit["rows"]
    assert (rows["kind"], rows["step"], rows["output"]) == ("step", "prepare", "rows")
    assert rows["preview"] == "[1, 2, 3]" and rows["error"] is None
    assert fit["label"]["kind"] == "expression" and fit["label"]["preview"] == '"model-2"'
    assert fit["fixed"] == {**fit["fixed"], "kind": "const", "source": "7", "preview": "7"}
    last = inputs("last")
    assert last["size"]["preview"] == "3" and last["size"]["step"] == "prepare"
    assert last["note"]["truncated"] and len(last["note"]["preview"]) == 1000
    assert inputs("prepare") == {} and inputs("each") == {}
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "inputs" in schema["StepDetail"]["properties"] and "InputView" in schema


def test_a_foreach_under_its_concurrency_counts_every_item_and_its_held_steps(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Items are created as they start (two at a time here): the summary and the step's
    progress count the twelve it was given, and the steps held inside mark it held."""
    import threading
    import time

    source = FLOW.replace("    foreach:", "    concurrency: 2\n    foreach:")
    body = {"source": source, "file_name": "fan.yaml"}
    assert client.post("/workflows", json=body, headers=h(tokens["owner"])).status_code < 300
    start = {"workflow": "fan", "breakpoints": ["each.square"]}
    run = client.post("/runs", json=start, headers=h(tokens["operator"])).json()
    driver = threading.Thread(target=services.runs.execute, args=(run["id"],))
    driver.start()
    try:
        deadline = time.monotonic() + 30
        while services.store.get_run(run["id"]).status.value != "paused":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        summary = client.get(f"/runs/{run['id']}/summary", headers=h(tokens["viewer"])).json()
        each = summary["nodes"][1]
        assert each["items"] == 12 and sum(each["children"].values()) == 2
        assert each["held"] == 2
        step = client.get(
            f"/runs/{run['id']}/step", params={"path": "each"}, headers=h(tokens["viewer"])
        ).json()
        assert step["progress"]["total"] == 12 and step["progress"]["done"] == 0
    finally:
        services.runs.kill(run["id"])
        driver.join(30)
