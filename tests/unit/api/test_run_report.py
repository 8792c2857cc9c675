"""``kaon run``'s end-of-run report reads what it prints, locally and over HTTP: a run of
1,500 top-level steps is read as a few short pages (the problems, the slowest of the others
sorted by the database, the top level's counts by status, as many metric values as the table
shows), and prints what the whole top level, read and folded in memory, would print."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pytest
from rich.console import Console

from kaon.api.deps import Services
from kaon.cli import render
from kaon.cli.show_view import REPORT_METRICS, report
from kaon.model.status import RunStatus, StepStatus
from kaon.service.client import KaonService
from kaon.service.remote import RemoteService
from kaon.service.run_reads import RunPage
from kaon.store.base import MetricRecord, RunRecord, StepRunRecord, WriteBatch

STEPS = 1500


def _status(i: int) -> StepStatus:
    if i == 5:
        return StepStatus.RUNNING
    if i % 50 == 7:
        return StepStatus.FAILED  # 30 failed: more than the table lists
    if i % 100 == 50:
        return StepStatus.SKIPPED  # never started: no duration
    return StepStatus.CACHED if i % 10 == 3 else StepStatus.SUCCEEDED


def _big_run(services: Services, run_id: str) -> None:
    """``STEPS`` top-level tasks; step ``i`` took ``1 + (i % 997) / 100`` seconds (the
    slowest: s996 to s992), one ``loss`` value each for the first 60."""
    steps: dict[tuple[str, int], StepRunRecord] = {}
    for i in range(STEPS):
        status = _status(i)
        started = status is not StepStatus.SKIPPED
        ended = started and status is not StepStatus.RUNNING
        error = (
            {"type": "ValueError", "message": f"bad {i}"} if status is StepStatus.FAILED else None
        )
        steps[(run_id, i + 1)] = StepRunRecord(
            run_id,
            i + 1,
            f"s{i}",
            f"s{i}",
            "task",
            status,
            attempts=1 if started else 0,
            error=error,
            created_at=0.0,
            started_at=100.0 if started else None,
            ended_at=101.0 + (i % 997) / 100 if ended else None,
        )
    values = [MetricRecord(run_id, i + 1, 1, "loss", 1.0 / (i + 1), 200.0) for i in range(60)]
    record = RunRecord(
        run_id, "big", "h", RunStatus.FAILED, created_at=0.0, started_at=100.0, ended_at=150.0
    )
    services.store.write(WriteBatch(runs=[record], step_runs=steps, metrics=values))


class _Recording:
    """A service that records the pages of step runs the report asks for."""

    def __init__(self, inner: KaonService) -> None:
        self.inner = inner
        self.asked: list[dict[str, Any]] = []
        self.rows = 0

    def run_page(self, run_id: str, **options: Any) -> RunPage:
        self.asked.append(options)
        page = self.inner.run_page(run_id, **options)
        self.rows += len(page.steps)
        return page


def _printed(service: Any, run_id: str) -> str:
    out = io.StringIO()
    report(service, Console(file=out, width=200), run_id)
    return out.getvalue()


def _whole_top_level_folded(service: KaonService, run_id: str) -> str:
    """What the report printed before it read only what it shows: the whole top level read,
    then folded in memory (with the metric values the report read)."""
    full = service.run_page(run_id, limit=1000, metrics_limit=REPORT_METRICS)
    more = service.run_page(run_id, limit=1000, offset=1000, metrics_limit=0)
    full.steps += more.steps
    out = io.StringIO()
    render.run_summary(Console(file=out, width=200), full)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_the_report_of_a_big_run_reads_a_few_short_pages(
    kind: str, client: Any, services: Services, tokens: dict[str, str]
) -> None:
    _big_run(services, "big")
    service: KaonService = services.runs
    if kind == "remote":
        service = RemoteService(
            "http://testserver", token=tokens["viewer"], transport=client._transport
        )
    recording = _Recording(service)
    printed = _printed(recording, "big")
    lines = printed.splitlines()

    # Bounded: the first FOLD_ABOVE steps (the run is big), the problems, twice the slowest,
    # one count of the top level's failed tasks; the metric values that fill the table.
    asked = recording.asked
    limit = render.FOLD_ABOVE + render.SUMMARY_PROBLEMS + 2 * render.SUMMARY_SLOWEST + 1
    assert sum(options.get("limit", 1000) for options in asked) <= limit
    assert recording.rows <= limit and len(asked) == 4
    assert max(options.get("metrics_limit", 1000) for options in asked) == REPORT_METRICS

    rows = [line.split()[0] for line in lines if line.split()[:1] and line.split()[0][1:].isdigit()]
    steps = [row for row in rows if row.startswith("s")]
    problems = [
        f"s{i}" for i in range(STEPS) if _status(i) in (StepStatus.RUNNING, StepStatus.FAILED)
    ]
    slowest = ["s996", "s995", "s994", "s993", "s992"]
    assert steps[: render.SUMMARY_PROBLEMS + render.SUMMARY_SLOWEST] == problems[:20] + slowest
    left = Counter(_status(i).value for i in range(STEPS))
    left.subtract(Counter(_status(int(step[1:])).value for step in problems[:20] + slowest))
    what = ", ".join(f"{n} {status}" for status, n in sorted(left.items()) if n)
    assert f"... and {STEPS - 25} more steps ({what}); all of them: kaon show big" in lines
    assert (
        "tasks: 150 cached, 30 failed, 1 running, 15 skipped, 1304 succeeded" in lines
    )  # counts of every task, from the database
    assert "... and more metric values" in printed
    assert f"(from the run's first {REPORT_METRICS} metric values" in printed
    assert "failed tasks, all levels" not in printed  # every failed task is on the top level

    # What reading and folding the whole top level prints, line for line.
    whole = _whole_top_level_folded(service, "big").splitlines()
    assert [line for line in lines if not line.startswith("(from the run's first")] == whole


def test_a_small_run_is_read_whole_with_the_metrics_of_the_folded_view(
    services: Services,
) -> None:
    """At most FOLD_ABOVE steps: one page of the whole top level; metric values repeated
    (epochs) are read as ``kaon show`` reads them, so their counts are whole."""
    steps = {
        ("small", i + 1): StepRunRecord(
            "small", i + 1, f"s{i}", f"s{i}", "task", StepStatus.SUCCEEDED, created_at=0.0
        )
        for i in range(3)
    }
    values = [MetricRecord("small", 1, 1, "loss", 1.0 / (e + 1), 200.0, step=e) for e in range(300)]
    record = RunRecord("small", "w", "h", RunStatus.SUCCEEDED, created_at=0.0)
    services.store.write(WriteBatch(runs=[record], step_runs=steps, metrics=values))
    recording = _Recording(services.runs)
    printed = _printed(recording, "small")
    assert all(f"s{i}" in printed for i in range(3))
    assert "last of 300 values" in printed and "more steps" not in printed
    assert recording.rows <= render.FOLD_ABOVE + 1


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_a_page_of_the_top_level_sorts_and_counts(
    kind: str, client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """``sort``/``desc`` order the top level (the slowest first, steps never started last)
    and ``top_counts`` counts it by status, whatever the page keeps."""
    _big_run(services, "big")
    service: KaonService = services.runs
    if kind == "remote":
        service = RemoteService(
            "http://testserver", token=tokens["viewer"], transport=client._transport
        )
    page = service.run_page(
        "big", statuses=("succeeded", "skipped"), sort="duration", descending=True, limit=3
    )
    assert [s.path for s in page.steps] == ["s996", "s995", "s994"]
    assert page.top_counts == dict(sorted(Counter(_status(i).value for i in range(STEPS)).items()))
    assert page.steps_total == page.top_counts["succeeded"] + page.top_counts["skipped"]
    last = service.run_page("big", statuses=("skipped",), sort="duration", descending=True)
    assert len(last.steps) == 15 and all(s.duration_s is None for s in last.steps)
