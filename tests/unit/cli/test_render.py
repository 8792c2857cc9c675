"""The end-of-run summary folds big runs; `kaon show` folds foreach items and pages steps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kaon.cli import render
from kaon.cli.main import app
from kaon.service.views import ErrorView, RunDetail, StepRunView


def _detail(steps: int, failed: set[int]) -> RunDetail:
    views = [
        StepRunView(
            path=f"s{i}",
            step_id=f"s{i}",
            kind="task",
            status="failed" if i in failed else "succeeded",
            attempts=1,
            duration_s=i / 1000,
            error=ErrorView(type="ValueError", message=f"bad {i}") if i in failed else None,
        )
        for i in range(steps)
    ]
    return RunDetail(
        id="r1",
        workflow="chain",
        status="failed" if failed else "succeeded",
        params={},
        created_at=0.0,
        steps=views,
        tasks={"succeeded": steps - len(failed), **({"failed": len(failed)} if failed else {})},
    )


def _printed(detail: RunDetail) -> list[str]:
    buffer = io.StringIO()
    render.run_summary(Console(file=buffer, width=200), detail)
    return buffer.getvalue().splitlines()


def _step_rows(lines: list[str]) -> set[str]:
    firsts = (line.split()[0] for line in lines if line.strip())
    return {word for word in firsts if word[0] == "s" and word[1:].isdigit()}


def test_a_small_run_is_shown_whole() -> None:
    lines = _printed(_detail(render.FOLD_ABOVE, set()))
    assert _step_rows(lines) == {f"s{i}" for i in range(render.FOLD_ABOVE)}
    assert not any("more steps" in line for line in lines)


def test_a_big_run_shows_counts_failed_and_slowest_steps_only() -> None:
    lines = _printed(_detail(1000, {3, 7}))
    slowest = {f"s{i}" for i in range(999, 999 - render.SUMMARY_SLOWEST, -1)}
    assert _step_rows(lines) == {"s3", "s7"} | slowest
    assert "tasks: 2 failed, 998 succeeded" in lines
    assert any("bad 3" in line for line in lines)
    assert lines[-1] == "... and 993 more steps (993 succeeded); all of them: kaon show r1"


def test_many_failures_are_capped() -> None:
    lines = _printed(_detail(300, set(range(100))))
    rows = _step_rows(lines)
    assert len(rows) == render.SUMMARY_PROBLEMS + render.SUMMARY_SLOWEST
    assert "80 failed" in lines[-1] and "195 succeeded" in lines[-1]


@pytest.fixture
def kaon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout

    return invoke


def test_show_folds_foreach_items_and_pages_steps(kaon) -> None:  # type: ignore[no-untyped-def]
    flows = str(Path(__file__).with_name("cli_flows.py"))
    code, out = kaon("run", f"{flows}:squares", "-p", "n=30")
    assert code == 0
    run_id = out.splitlines()[0]
    code, out = kaon("show", run_id)
    assert "30 succeeded" in out  # the foreach is one line with its items counted
    code, out = kaon("show", run_id, "--json")
    assert [s["path"] for s in json.loads(out)["steps"]] == ["numbers", "each", "total"]
    code, out = kaon("show", run_id, "--all", "--json")
    assert len(json.loads(out)["steps"]) > 30
    code, out = kaon("show", run_id, "--all", "--limit", "5", "--offset", "2", "--json")
    paths = [s["path"] for s in json.loads(out)["steps"]]
    code, everything = kaon("show", run_id, "--all", "--json")
    assert paths == [s["path"] for s in json.loads(everything)["steps"]][2:7]
    code, out = kaon("show", run_id, "--all", "--limit", "5")
    assert code == 0 and "steps 1-5 of" in out and "more with --offset 5" in out


def test_the_metrics_table_says_how_many_rows_it_leaves_out() -> None:
    from kaon.service.views import MetricView

    detail = _detail(2, set())
    detail.metrics = [
        MetricView(path=f"s{i % 2}", name=f"m{i}", value=float(i), at=0.0) for i in range(80)
    ]
    lines = _printed(detail)
    rows = [line for line in lines if line.split()[:1] in (["s0"], ["s1"]) and " m" in line]
    assert len(rows) == render.METRICS_SHOWN
    assert f"... and {80 - render.METRICS_SHOWN} more metric values" in "\n".join(lines)
    assert "GET /runs/r1/metrics" in "\n".join(lines)
    # Repeated values of one metric (epochs) are one row: its last value, with a count.
    detail.metrics = [
        MetricView(path="s0", name="loss", value=1.0 / (e + 1), step=e, at=0.0) for e in range(200)
    ]
    lines = _printed(detail)
    loss = [line for line in lines if "loss" in line]
    assert len(loss) == 1 and "0.005" in loss[0] and "last of 200 values" in loss[0]
    assert not any("more metric" in line for line in lines)


def test_an_attempts_error_shows_its_whole_message() -> None:
    """A database's message carries its location on the lines after the first (``LINE 6:``
    and a caret): ``kaon logs`` shows them, not only the summary."""
    from kaon.service.views import AttemptView

    message = (
        'Binder Error: Referenced column "nosuchcol" not found\n\nLINE 6:   nosuchcol = 1\n  ^'
    )
    step = StepRunView(
        path="q",
        step_id="q",
        kind="task",
        status="failed",
        attempts=1,
        attempt_list=[
            AttemptView(
                number=1, status="failed", error=ErrorView(type="SQLError", message=message)
            )
        ],
    )
    buffer = io.StringIO()
    render.attempt_errors(Console(file=buffer, width=200), step, None)
    text = buffer.getvalue()
    assert "attempt 1: SQLError: Binder Error" in text and "LINE 6:   nosuchcol = 1" in text


def test_a_steps_row_shows_its_first_outputs_and_counts_the_rest() -> None:
    """A step with hundreds of outputs printed every one of them in its row."""
    from kaon.service.views import OutputView

    detail = _detail(1, set())
    detail.steps[0].outputs = {f"k{i}": OutputView(kind="value", value=i) for i in range(300)}
    text = "\n".join(_printed(detail))
    assert "k0=0" in text and f"k{render.OUTPUTS_SHOWN - 1}=" in text
    assert f"k{render.OUTPUTS_SHOWN}=" not in text
    assert f"and {300 - render.OUTPUTS_SHOWN} more outputs" in text.replace("\n", " ")


def test_a_step_with_outputs_and_a_reason_shows_both() -> None:
    """A step continued past a breakpoint, or a wait step, has a reason; its row showed the
    reason alone and hid what it returned."""
    from kaon.service.views import OutputView

    detail = _detail(1, set())
    detail.steps[0].outputs = {"return": OutputView(kind="value", value=42)}
    detail.steps[0].reason = "breakpoint passed"
    row = next(line for line in _printed(detail) if line.strip().startswith("s0 "))
    assert "return=42" in row and "breakpoint passed" in row
