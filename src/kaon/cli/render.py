"""Human-readable tables for the CLI (the ``--json`` output is the view models themselves)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kaon.cli._text import shown, shown_value
from kaon.cli.live import STATUS_STYLE
from kaon.service.views import LogView, OutputView, RunDetail, RunView, StepRunView

if TYPE_CHECKING:
    from kaon.service.run_reads import RunPage


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.2f}s"
    return f"{value / 60:.1f}m"


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _output(view: OutputView) -> str:
    if view.kind == "value":
        return shown_value(view.value, 40)
    if view.kind == "artifact":
        kind = (view.type or view.serializer or "").rsplit(".", 1)[-1]
        return f"<{kind} {view.size or 0:,} B {str(view.hash)[:8]}>"
    return f"<{view.kind} of {view.items}>"


def run_list(console: Console, runs: list[RunView]) -> None:
    """A table of runs."""
    table = Table(box=None, header_style="bold")
    for column in ("run", "workflow", "status", "created", "duration", "error"):
        table.add_column(column, no_wrap=column != "error")
    for run in runs:
        table.add_row(
            run.id,
            run.workflow,
            _status(run.status),
            _when(run.created_at),
            _secs(run.duration_s),
            shown((run.error or "")[:60]),
        )
    console.print(table)


FOLD_ABOVE = 12
"""Runs with more steps than this get a folded end-of-run summary (see :func:`run_summary`)."""
SUMMARY_SLOWEST = 5
SUMMARY_PROBLEMS = 20
WENT_WELL = frozenset({"succeeded", "cached", "skipped"})
"""The statuses of the steps a folded summary counts but does not list (save the slowest)."""


def run_summary(console: Console, detail: RunDetail) -> None:
    """The end-of-run report of a run whose top level ``detail`` holds whole: header,
    counts, then only the steps worth a look.

    A small run is shown whole (:func:`run_detail`). Above :data:`FOLD_ABOVE` steps, the table
    holds the steps that did not go well (at most :data:`SUMMARY_PROBLEMS`) and the
    :data:`SUMMARY_SLOWEST` slowest of the others, and one line counts the rest (see
    :func:`folded_summary`, which ``kaon run`` calls with those steps read from the store).
    """
    if len(detail.steps) <= FOLD_ABOVE:
        run_detail(console, detail)
        return
    problems = [s for s in detail.steps if s.status not in WENT_WELL]
    rest = [s for s in detail.steps if s.status in WENT_WELL]
    counts = Counter(s.status for s in detail.steps)
    folded_summary(console, detail, problems[:SUMMARY_PROBLEMS] + slowest(rest), counts)


def slowest(steps: list[StepRunView]) -> list[StepRunView]:
    """The :data:`SUMMARY_SLOWEST` steps of ``steps`` that took longest (of those with a
    duration), slowest first; ties keep the order given."""
    timed = (s for s in steps if s.duration_s is not None)
    return sorted(timed, key=lambda s: s.duration_s or 0.0, reverse=True)[:SUMMARY_SLOWEST]


def folded_summary(
    console: Console, detail: RunDetail, shown: list[StepRunView], counts: Mapping[str, int]
) -> None:
    """A big run's end-of-run report: ``detail``'s header and metrics, the top-level steps
    ``shown`` (those that did not go well, then the slowest), and one line counting the rest
    by status: ``counts`` are the top level's step runs by status, every one of them. Costs
    what it prints, whatever the size of the run; ``kaon show`` lists every step."""
    header(console, detail)
    console.print(step_table(shown, title="steps that did not succeed, then the slowest"))
    rest = Counter(dict(counts))
    rest.subtract(Counter(s.status for s in shown))
    left = {status: n for status, n in rest.items() if n > 0}
    hidden = sum(left.values())
    if hidden:
        what = ", ".join(f"{n} {status}" for status, n in sorted(left.items()))
        console.print(
            Text(f"... and {hidden} more steps ({what}); all of them: kaon show {detail.id}")
        )
    metrics_table(console, detail)


def run_detail(
    console: Console,
    detail: RunDetail,
    *,
    tracebacks: bool = False,
    tracebacks_max: int | None = None,
) -> None:
    """A run's header, step table, metrics, and (optionally) failed steps' tracebacks (the
    first ``tracebacks_max`` of them when given)."""
    header(console, detail)
    console.print(step_table(detail.steps))
    metrics_table(console, detail)
    if tracebacks:
        failed = [
            step
            for step in detail.steps
            if step.status == "failed" and step.error is not None and step.error.traceback
        ]
        for step in failed[:tracebacks_max]:
            assert step.error is not None and step.error.traceback is not None
            console.print(Text(f"\n{step.path} failed:", style="bold red"))
            console.print(shown(step.error.traceback.rstrip()), markup=False, highlight=False)


def failed_tasks(console: Console, page: RunPage, run_id: str) -> None:
    """The first failed tasks of every level (``page``), and how to page through the rest."""
    listed = len(page.steps)
    title = f"failed tasks, all levels: the first {listed} of {page.steps_total}"
    console.print(step_table(page.steps, title=title))
    if page.steps_total > listed:
        console.print(
            Text(f"all of them, a page at a time: kaon show {run_id} --status failed --page 1")
        )


def header(console: Console, detail: RunDetail) -> None:
    """The run's id, workflow, status, duration, parameters, task counts and error."""
    header = Text.assemble(
        ("run ", "bold"),
        (detail.id, "cyan"),
        f"  {detail.workflow}  ",
        _status(detail.status),
        f"  {_secs(detail.duration_s)}",
    )
    console.print(header)
    if detail.params:
        console.print("params: " + shown_value(detail.params))
    if detail.tasks:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(detail.tasks.items()))
        console.print(f"tasks: {counts}")
    if detail.error:
        console.print(Text(f"error: {shown(detail.error)}", style="red"))


def step_table(steps: list[StepRunView], title: str | None = None, *, header: bool = True) -> Table:
    """A table of step runs: status, attempts, duration, items by status, outputs or error."""
    table = Table(
        box=None, header_style="bold", title=title, title_justify="left", show_header=header
    )
    for column in ("step", "status", "attempts", "duration", "items"):
        table.add_column(column, no_wrap=True)
    table.add_column("outputs / error", overflow="fold")
    for step in steps:
        items = ", ".join(f"{n} {s}" for s, n in sorted(step.children.items()))
        if step.error is not None:
            note = Text(shown(step.error.summary), style="red")
        elif step.reason and step.outputs:  # what it produced, then why (a signal, a break)
            note = Text(shown(_outputs_text(step.outputs)))
            note.append(f"  ({shown(step.reason)})", style="dim")
        elif step.reason:
            note = Text(shown(step.reason), style="dim")
        else:
            note = Text(shown(_outputs_text(step.outputs)))
        table.add_row(
            step.path,
            _status(step.status),
            str(step.attempts or ""),
            _secs(step.duration_s),
            items,
            note,
        )
    return table


OUTPUTS_SHOWN = 8
"""Outputs a step's row shows at most; the rest are counted (`kaon show RUN STEP` has all)."""


def _outputs_text(outputs: dict[str, Any]) -> str:
    shown_items = list(outputs.items())[:OUTPUTS_SHOWN]
    text = ", ".join(f"{k}={_output(v)}" for k, v in shown_items)
    hidden = len(outputs) - len(shown_items)
    return f"{text}, ... and {hidden:,} more outputs" if hidden > 0 else text


METRICS_SHOWN = 50
"""Rows of the metrics table at most; a line counts the rest and says where to see them."""


def metrics_table(console: Console, detail: RunDetail) -> None:
    """One row per (step, metric): its last value, and how many values it had (epochs)."""
    if not detail.metrics:
        return
    last: dict[tuple[str, str], tuple[float, int]] = {}
    for metric in detail.metrics:
        _, count = last.get((metric.path, metric.name), (0.0, 0))
        last[(metric.path, metric.name)] = (metric.value, count + 1)
    table = Table(box=None, header_style="bold", title="metrics", title_justify="left")
    for column in ("step", "metric", "value", ""):
        table.add_column(column)
    rows = list(last.items())
    for (path, name), (value, count) in rows[:METRICS_SHOWN]:
        table.add_row(path, name, f"{value:.6g}", f"(last of {count} values)" if count > 1 else "")
    console.print(table)
    hidden = len(rows) - METRICS_SHOWN
    if hidden > 0:
        # Of the values read: more than that when the read stopped short of the run's last.
        more = "more" if detail.metrics_truncated else f"{hidden} more"
        console.print(
            Text(
                f"... and {more} metric values; all of them: kaon.client "
                f"run.metrics(), or GET /runs/{detail.id}/metrics",
                style="dim",
            )
        )


def log_lines(console: Console, lines: list[LogView]) -> None:
    """Log lines prefixed with attempt and stream."""
    for line in lines:
        prefix = Text(f"[{line.attempt}] {line.stream:6} ", style="dim")
        text = Text(shown(line.text), style="red" if line.stream == "stderr" else "")
        console.print(prefix + text)


def attempt_errors(console: Console, step: StepRunView, attempt: int | None) -> None:
    """Each failed attempt's error and traceback."""
    for view in step.attempt_list:
        if attempt is not None and view.number != attempt:
            continue
        if view.error is None:
            continue
        summary = shown(view.error.summary)
        console.print(Text(f"attempt {view.number}: {summary}", style="bold red"))
        rest = view.error.message.strip().splitlines()[1:]  # a database's LINE 6: ... ^^^
        if rest:
            console.print(shown("\n".join(rest)), markup=False, highlight=False)
        if view.error.traceback:
            console.print(shown(view.error.traceback.rstrip()), markup=False, highlight=False)
