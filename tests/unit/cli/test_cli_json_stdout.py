"""What a script reads on stdout from ``--json``: one JSON document, whatever the outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

FLOW = str(Path(__file__).with_name("cli_flows.py"))


def test_skip_of_an_active_run_prints_the_run_with_json(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    """The skip of a run that is not finished is sent to its engine (or queued for the next
    one): stdout stayed empty with --json, so ``kaon skip ... --json | jq`` read nothing."""
    from kaon.service import LocalService, Settings

    with LocalService(Settings.from_env(create_store=True)) as service:
        run_id = service.create_run(service.validate(f"{FLOW}:squares"), {"n": 2}).id
    code, out, err = kaon("skip", run_id, "numbers", "--output", "[5]", "--json")
    assert code == 0, (out, err)
    view = json.loads(out)
    assert view["id"] == run_id and view["status"] == "pending", view
    assert "the skip of numbers is recorded" in err, err
