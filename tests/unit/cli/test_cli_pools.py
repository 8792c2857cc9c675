"""``kaon pool`` and ``kaon permit`` on the local store, and ``kaon run --priority``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

Kaon = Callable[..., tuple[int, str, str]]
FLOW = "name: fit\nsteps:\n  - id: train\n    shell: echo hi\n    pool: gpu\n    tags: [db]\n"


def test_pools_and_permits_are_managed_and_listed(kaon: Kaon) -> None:
    code, out, _ = kaon("pool", "set", "gpu", "--slots", "4", "--gpus", "2", "--memory", "64Gi")
    assert code == 0 and out.strip() == "pool gpu: 0/4 slots used"
    code, out, _ = kaon("pool", "list")
    assert out.strip() == "gpu  slots 0/4  memory 0Gi/64Gi  gpus 0/2"
    code, out, _ = kaon("permit", "set", "db", "--max", "1", "--json")
    assert json.loads(out) == {"max": 1, "tag": "db", "used": 0}
    assert json.loads(kaon("pool", "list", "--json")[1])[0]["memory"] == 64 * 2**30
    assert kaon("permit", "list")[1].strip() == "db  0/1"
    assert kaon("pool", "delete", "gpu")[0] == 0
    code, _, err = kaon("pool", "delete", "gpu")
    assert code != 0 and "no pool 'gpu'" in err
    code, _, err = kaon("pool", "set", "no/slash", "--slots", "1")
    assert code != 0 and "pool must be a name" in err


def test_a_run_needs_its_pool_and_keeps_its_priority(kaon: Kaon, tmp_path: Path) -> None:
    flow = tmp_path / "fit.yaml"
    flow.write_text(FLOW)
    code, _, err = kaon("run", str(flow))
    assert code != 0 and "steps[0].pool: step 'train': pool 'gpu' does not exist" in err
    kaon("pool", "set", "gpu", "--slots", "1")
    code, out, _ = kaon("run", str(flow), "--priority", "7", "--json")
    detail = json.loads(out)
    assert code == 0 and detail["status"] == "succeeded" and detail["priority"] == 7
    assert kaon("run", str(flow), "--priority", "5000")[0] != 0
