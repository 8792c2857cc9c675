"""The workflow page's and step panel's reads: start form, version diff, audit, explain,
previews and progress."""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services

V1 = """name: tuned
params:
  n: {type: int, default: 3, description: how many}
  name: {type: str}
  fast: {type: bool, default: false}
  double: {type: int, default: "${{ params.n * 2 }}"}
steps:
  - id: make
    shell: "echo ::kaon::output value=$KAON_INPUT_N"
    inputs: {n: "${{ params.n }}"}
  - id: each
    foreach: "[1, 2, 3]"
    steps:
      - id: t
        shell: "true"
"""
V2 = V1.replace("how many", "how many rows").replace("value=$KAON_INPUT_N", "value=x")


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_start_form_diff_and_audit(client: Any, tokens: dict[str, str], services: Services) -> None:
    owner, viewer = h(tokens["owner"]), h(tokens["viewer"])
    for source in (V1, V2):
        body = {"source": source, "file_name": "tuned.yaml"}
        assert client.post("/workflows", json=body, headers=owner).status_code < 300
    form = client.get("/workflows/tuned/params", headers=viewer).json()
    assert form["version"] == 2
    fields = {f["name"]: f for f in form["params"]}
    assert list(fields) == ["n", "name", "fast", "double"]
    assert fields["n"] == {
        "name": "n",
        "type": "int",
        "required": False,
        "default": 3,
        "computed": None,
        "description": "how many rows",
        "nullable": False,
        "choices": [],
    }
    assert fields["name"]["required"] and fields["fast"]["default"] is False
    assert fields["double"]["computed"] == "params.n * 2" and fields["double"]["default"] is None
    first = client.get("/workflows/tuned/params", params={"version": 1}, headers=viewer).json()
    assert first["params"][0]["description"] == "how many"

    diff = client.get("/workflows/tuned/diff", params={"old": 1, "new": 2}, headers=viewer)
    text = diff.json()["source_diff"]
    assert text.startswith("--- v1/tuned.yaml\n+++ v2/tuned.yaml\n")
    assert "-  n: {type: int, default: 3, description: how many}\n" in text
    assert "+  n: {type: int, default: 3, description: how many rows}\n" in text
    assert "how many rows" in diff.json()["spec_diff"]
    assert not diff.json()["same_definition"]
    stranger = h(tokens["stranger"])
    assert client.get("/workflows/tuned/params", headers=stranger).status_code == 403
    assert client.get("/workflows/tuned/diff?old=1&new=9", headers=viewer).status_code == 404

    client.post("/workflows/tuned/activate", json={"version": 1}, headers=owner)
    trail = client.get("/workflows/tuned/audit", headers=viewer).json()
    assert [(a["actor"], a["action"]) for a in trail][-1] == ("owner", "workflow.activate")

    run = client.post(
        "/runs", json={"workflow": "tuned", "params": {"name": "x"}}, headers=h(tokens["owner"])
    ).json()
    services.runs.execute(run["id"])
    restarted = client.post(
        f"/runs/{run['id']}/restart",
        json={"from_step": "each[1]", "force": True},
        headers=h(tokens["operator"]),
    )
    assert restarted.status_code == 200, restarted.text
    services.runs.execute(run["id"])
    acts = client.get(f"/runs/{run['id']}/audit", headers=viewer).json()
    assert [(a["actor"], a["action"], a["data"].get("from_step")) for a in acts] == [
        ("owner", "run.start", None),
        ("operator", "run.restart", "each[1]"),
    ]
    assert client.get(f"/runs/{run['id']}/audit", headers=stranger).status_code == 403


def test_step_panel_reads(client: Any, tokens: dict[str, str], services: Services) -> None:
    owner, viewer = h(tokens["owner"]), h(tokens["viewer"])
    client.post("/workflows", json={"source": V1, "file_name": "tuned.yaml"}, headers=owner)
    run = client.post(
        "/runs", json={"workflow": "tuned", "params": {"name": "x"}}, headers=owner
    ).json()
    services.runs.execute(run["id"])
    get = lambda route, **q: client.get(  # noqa: E731
        f"/runs/{run['id']}/{route}", params=q, headers=viewer
    )
    shown = get("preview", path="make", output="value").json()
    assert shown == {**shown, "kind": "value", "value": 3}
    assert get("preview", path="make", output="nope").status_code == 404
    assert get("lineage", path="make", output="value").status_code == 404  # a value
    why = get("explain", path="make").json()
    assert why["path"] == "make" and why["verdict"] in {"no_earlier_execution", "not_cacheable"}
    each = get("step", path="each").json()
    assert each["progress"] == {
        "fraction": 1.0,
        "message": "",
        "done": 3,
        "total": 3,
        "eta_s": None,
    }


def test_run_history_is_filtered_and_paged_in_the_database(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    owner, viewer = h(tokens["owner"]), h(tokens["viewer"])
    client.post("/workflows", json={"source": V1, "file_name": "tuned.yaml"}, headers=owner)
    ids = [
        client.post(
            "/runs", json={"workflow": "tuned", "params": {"name": name}}, headers=owner
        ).json()["id"]
        for name in ("alpha", "beta", "gamma")
    ]
    services.runs.execute(ids[0])
    get = lambda **q: client.get(  # noqa: E731
        "/workflows/tuned/runs", params=q, headers=viewer
    ).json()
    page = get(limit=2)
    assert page["total"] == 3 and [r["id"] for r in page["runs"]] == ids[::-1][:2]
    assert page["runs"][0]["started_by"] == "owner"
    assert [r["id"] for r in get(limit=2, offset=2)["runs"]] == [ids[0]]
    assert [r["id"] for r in get(status="succeeded")["runs"]] == [ids[0]]
    assert get(status=["pending", "succeeded"])["total"] == 3
    assert [r["params"]["name"] for r in get(q="BETA")["runs"]] == ["beta"]
    assert get(q=ids[2][-6:])["total"] == 1
    assert get(since=4102444800)["total"] == 0 and get(until=4102444800)["total"] == 3
    stranger = h(tokens["stranger"])
    assert client.get("/workflows/tuned/runs", headers=stranger).status_code == 403
    assert client.get("/workflows/tuned/runs?status=bogus", headers=viewer).status_code == 422


def test_diff_shows_the_bundle_files_that_changed(client: Any, tokens: dict[str, str]) -> None:
    owner, viewer = h(tokens["owner"]), h(tokens["viewer"])
    for value in (1, 2):
        helper = f"def value():\n    return {value}\n"
        body = {"source": BUNDLED, "file_name": "flow.py", "files": {"helper.py": helper}}
        pushed = client.post("/workflows", json=body, headers=owner)
        assert pushed.status_code < 300, pushed.text
    diff = client.get("/workflows/bundled/diff", params={"old": 1, "new": 2}, headers=viewer)
    found = diff.json()
    assert found["source_diff"] == ""  # the workflow file did not change
    assert found["bundle_diffs"]["helper.py"].endswith("-    return 1\n+    return 2\n")
    assert "/sources/" not in found["spec_diff"]  # no server path, no folder as a difference


BUNDLED = """
import kaon
import helper


@kaon.step
def answer() -> object:
    return helper.value()


@kaon.workflow
def bundled() -> None:
    answer()
"""


def test_versions_come_by_pages_from_the_newest(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    owner = h(tokens["owner"])
    for n in range(1, 6):  # five versions, each with another default
        body = {"source": V1.replace("default: 3", f"default: {n}"), "file_name": "tuned.yaml"}
        assert client.post("/workflows", json=body, headers=owner).status_code < 300
    every = client.get("/workflows/tuned/versions", headers=owner)
    assert [v["version"] for v in every.json()] == [1, 2, 3, 4, 5]
    assert every.headers["Kaon-Older"] == "false"
    newest = client.get("/workflows/tuned/versions", params={"limit": 2}, headers=owner)
    assert [v["version"] for v in newest.json()] == [4, 5]
    assert newest.headers["Kaon-Older"] == "true"
    older = client.get("/workflows/tuned/versions", params={"limit": 2, "before": 4}, headers=owner)
    assert [v["version"] for v in older.json()] == [2, 3]
    oldest = client.get(
        "/workflows/tuned/versions", params={"limit": 2, "before": 2}, headers=owner
    )
    assert [v["version"] for v in oldest.json()] == [1]
    assert oldest.headers["Kaon-Older"] == "false"
    too_many = client.get("/workflows/tuned/versions", params={"limit": 1001}, headers=owner)
    assert too_many.status_code == 422


def test_the_audit_trail_keeps_no_secret_property_value(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """``workflow.update`` entries kept the properties as sent, alert webhook URLs (secrets:
    ``GET /workflows`` hides properties from other groups) included; once the workflow
    moved to another group, that group read the old group's webhooks in
    ``GET /workflows/{name}/audit``. The entry keeps which keys changed and the values
    that are no secret, and marks the others as set or removed."""
    owner, admin = h(tokens["owner"]), h(tokens["admin"])
    body = {"source": V1, "file_name": "tuned.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=owner).status_code < 300
    hook = "https://hooks.example/T000/B000/s3cr3t-webhook-key"
    changes = [
        {
            "alerts": {"on_failure": [hook], "on_late": hook, "max_duration_s": 600},
            "concurrency": 2,
            "api_key": "s3cr3t-own-metadata",
        },
        {"alerts": None, "api_key": None, "run_strategy": "sequential"},
    ]
    for properties in changes:
        answer = client.patch("/workflows/tuned", json={"properties": properties}, headers=owner)
        assert answer.status_code == 200, answer.text
    # an entry written before the values were left out is read without them
    stored = {"properties": {"alerts": {"on_success": hook}}, "owner_group": None}
    services.auth.audit("owner", "workflow.update", "workflow:tuned", stored)
    moved = client.patch("/workflows/tuned", json={"owner_group": "other"}, headers=admin)
    assert moved.status_code == 200, moved.text
    for reader, path in (
        (tokens["stranger"], "/workflows/tuned/audit"),
        (tokens["admin"], "/audit"),
    ):
        trail = client.get(path, params={"limit": 1000}, headers=h(reader))
        assert trail.status_code == 200, trail.text
        assert "s3cr3t" not in trail.text, (path, trail.text)
        updates = [a["data"] for a in trail.json() if a["action"] == "workflow.update"]
        assert [u["properties"] for u in updates] == [
            {
                "alerts": {"on_failure": "(set)", "on_late": "(set)", "max_duration_s": 600},
                "concurrency": 2,
                "api_key": "(set)",
            },
            {"alerts": "(removed)", "api_key": "(removed)", "run_strategy": "sequential"},
            {"alerts": {"on_success": "(set)"}},
            {},
        ]
        assert updates[-1]["owner_group"] == "other"
