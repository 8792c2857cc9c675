"""Pools and tag permits over HTTP: admins change them, everyone with a token reads them
with what is used; /metrics shows them; runs name pools that exist and carry a priority."""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services
from kaon.model.status import RunStatus
from kaon.store.base import HoldClaim, RunRecord, WriteBatch

GPU_FLOW = "name: train\nsteps:\n  - id: fit\n    shell: echo hi\n    pool: gpu\n"


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_only_admins_change_pools_and_permits(client: Any, tokens: dict[str, str]) -> None:
    body = {"slots": 2, "gpus": 4, "memory": 2**34}
    assert client.put("/pools/gpu", json=body, headers=h(tokens["owner"])).status_code == 403
    made = client.put("/pools/gpu", json=body, headers=h(tokens["admin"]))
    assert made.status_code == 200
    assert made.json() | {"by_group": {}} == {
        "name": "gpu",
        "slots": 2,
        "cpus": None,
        "memory": 2**34,
        "gpus": 4.0,
        "used": 0,
        "used_cpus": 0.0,
        "used_memory": 0,
        "used_gpus": 0.0,
        "by_group": {},
    }
    assert (
        client.put("/permits/db", json={"max": 1}, headers=h(tokens["viewer"])).status_code == 403
    )
    assert client.put("/permits/db", json={"max": 1}, headers=h(tokens["admin"])).json() == {
        "tag": "db",
        "max": 1,
        "used": 0,
    }
    assert [p["name"] for p in client.get("/pools", headers=h(tokens["viewer"])).json()] == ["gpu"]
    assert client.get("/permits", headers=h(tokens["viewer"])).json()[0]["tag"] == "db"
    bad = client.put("/pools/gpu", json={"slots": -1}, headers=h(tokens["admin"]))
    assert bad.status_code == 422
    named = client.put("/pools/a%20b", json={"slots": 1}, headers=h(tokens["admin"]))
    assert named.status_code == 422 and "pool must be a name" in named.json()["message"]
    assert client.delete("/pools/gpu", headers=h(tokens["admin"])).status_code == 204
    assert client.delete("/pools/gpu", headers=h(tokens["admin"])).status_code == 404
    assert client.delete("/permits/db", headers=h(tokens["admin"])).status_code == 204
    audit = client.get("/audit", headers=h(tokens["admin"])).json()
    assert {"pool.set", "pool.delete", "permit.set", "permit.delete"} <= {
        a["action"] for a in audit
    }


def test_metrics_show_pool_slots_used_and_limits(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    client.put("/pools/gpu", json={"slots": 3}, headers=h(tokens["admin"]))
    client.put("/permits/db", json={"max": 2}, headers=h(tokens["admin"]))
    store = services.store
    store.write(WriteBatch(runs=[RunRecord("r1", "w", "x", RunStatus.RUNNING, created_at=1.0)]))
    assert store.acquire_lease("r1", "e", 60.0) is not None
    store.claim_holds("e", [HoldClaim("r1", "a", 1, "gpu", ("db",))])
    text = client.get("/metrics", headers=h(tokens["viewer"])).text
    assert 'kaon_pool_slots_limit{pool="gpu"} 3.0' in text
    assert 'kaon_pool_slots_used{pool="gpu"} 1.0' in text
    assert 'kaon_permit_limit{tag="db"} 2.0' in text and 'kaon_permit_used{tag="db"} 1.0' in text
    listed = client.get("/pools", headers=h(tokens["viewer"])).json()
    assert listed[0]["used"] == 1 and listed[0]["by_group"] == {"": 1}


def test_a_run_naming_a_missing_pool_is_refused_and_a_priority_is_kept(
    client: Any, tokens: dict[str, str]
) -> None:
    body = {"source": GPU_FLOW, "file_name": "train.yaml"}
    assert client.post("/workflows", json=body, headers=h(tokens["admin"])).status_code == 200
    refused = client.post("/runs", json={"workflow": "train"}, headers=h(tokens["admin"]))
    assert refused.status_code == 422
    assert "step 'fit': pool 'gpu' does not exist" in refused.json()["message"]
    client.put("/pools/gpu", json={"slots": 1}, headers=h(tokens["admin"]))
    started = client.post(
        "/runs", json={"workflow": "train", "priority": 9}, headers=h(tokens["admin"])
    )
    assert started.status_code == 201 and started.json()["priority"] == 9
    too_high = client.post(
        "/runs", json={"workflow": "train", "priority": 5000}, headers=h(tokens["admin"])
    )
    assert too_high.status_code == 422
