"""A mistyped step path in ``kaon logs`` (and every read of one step run: ``show``'s step
panel, ``explain``, ``GET /runs/{id}/steps/{path}``) names the closest step of the run."""

from __future__ import annotations

from pathlib import Path

FLOWS = str(Path(__file__).with_name("cached_log_flows.py"))


def test_a_mistyped_step_path_gets_the_closest_step(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, err = kaon("run", f"{FLOWS}:noisy")
    assert code == 0, err
    run = out.splitlines()[0].strip()
    code, _, err = kaon("logs", run, "lowd")
    assert code != 0
    assert "no step run 'lowd'" in err and "(did you mean 'loud'?)" in err, err
    code, _, err = kaon("logs", run, "lowd[2].x")
    assert "(did you mean 'loud[2].x'?)" in err, err
    code, _, err = kaon("logs", run, "zzzzzz")
    assert "no step run 'zzzzzz'" in err and "did you mean" not in err, err
