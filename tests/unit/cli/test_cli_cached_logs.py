"""``kaon logs`` of a cached step said it "wrote no log lines": the step's log is that of
the execution it reused (as its metrics are), which it now prints, saying whose it is."""

from __future__ import annotations

from pathlib import Path

FLOWS = str(Path(__file__).with_name("cached_log_flows.py"))


def test_logs_of_a_cached_step_are_those_of_the_execution_it_reused(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, err = kaon("run", f"{FLOWS}:noisy")
    assert code == 0, err
    first = out.splitlines()[0].strip()
    code, out, err = kaon("run", f"{FLOWS}:noisy")
    assert code == 0, err
    second = out.splitlines()[0].strip()
    code, out, err = kaon("logs", second, "loud")
    assert code == 0, err
    assert "loading 3 rows" in out
    assert "wrote no log lines" not in err
    assert f"reused {first}:loud" in err.replace("\n", "")
    code, out, _ = kaon("logs", second, "loud", "--json")
    assert code == 0 and out.strip() == "[]", "--json: the step run's own lines"
