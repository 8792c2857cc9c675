"""``kaon show``: a run as it reads best, at a cost that does not grow with the run.

The default view is folded: the header with task counts by status (counted in the database),
the top level of the run (a foreach or loop is one line with its items counted by status),
its first metrics, and the first :data:`FAILED_SHOWN` failed tasks of every level with how to
page through the rest (``--status failed --page N``). ``--status`` pages through the tasks of
every level in one status; ``--all`` streams every step run of every level a page at a time
(or prints one page with ``--limit`` / ``--page``). Every read is one bounded page
(:meth:`kaon.service.run_reads.RunReads.page`), so memory never holds the whole run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from kaon.errors import ConfigurationError
from kaon.model.status import StepStatus
from kaon.service.limits import MAX_OFFSET

if TYPE_CHECKING:
    from rich.console import Console

    from kaon.service.client import KaonService
    from kaon.service.run_reads import RunPage

FAILED_SHOWN = 10
"""Failed tasks listed by the folded view (the rest page with ``--status failed``)."""
STATUS_PAGE = 50
"""Tasks per page of ``--status`` when ``--limit`` is not given."""
STREAM_PAGE = 1000
"""Step runs per read while ``--all`` streams the whole run."""
TOP_PAGE = 1000
"""Top-level steps the folded view shows when ``--limit`` is not given."""
METRICS_READ = 1000
"""Metrics read for the folded view (the table shows the last value of each)."""
REPORT_METRICS = 51
"""Metric values ``kaon run``'s report reads first: one more than the rows of its table
(:data:`kaon.cli.render.METRICS_SHOWN`). When they are that many (step, metric) pairs, the
table is full; else (a metric reported at every epoch) it reads :data:`METRICS_READ`."""


@dataclass(frozen=True, slots=True)
class ShowRequest:
    """What ``kaon show`` was asked for (see the command's options)."""

    run_id: str
    all_steps: bool = False
    status: str | None = None
    page: int | None = None
    limit: int | None = None
    offset: int = 0
    as_json: bool = False

    def first_offset(self, size: int) -> int:
        """The offset of the first step run shown for pages of ``size``.

        Raises ConfigurationError, naming ``--page``, when that is further than a read pages
        (``--page`` and ``--offset`` are each bounded, their sum and product are not)."""
        first = self.offset + ((self.page - 1) * size if self.page else 0)
        if first > MAX_OFFSET:
            asked = f"--page {self.page} of {size} steps" + (
                f" after --offset {self.offset}" if self.offset else ""
            )
            raise ConfigurationError(
                f"{asked} starts at step {first + 1:,}: pages start at most {MAX_OFFSET:,} steps in"
            )
        return first


def show(service: KaonService, out: Console, request: ShowRequest) -> None:
    """Print the view ``request`` asks for (see the module docstring)."""
    if request.status is not None:
        _status_page(service, out, request)
    elif request.all_steps:
        _all_levels(service, out, request)
    else:
        _folded(service, out, request)


def report(service: KaonService, out: Console, run_id: str) -> None:
    """``kaon run``'s end-of-run report: the top level folded (problems, then the slowest;
    see :func:`kaon.cli.render.run_summary`) and the first failed tasks of every level.

    It reads what it prints: a run of at most :data:`~kaon.cli.render.FOLD_ABOVE` top-level
    steps whole; a bigger one as the first :data:`~kaon.cli.render.SUMMARY_PROBLEMS` steps
    that did not go well, the slowest of the others (sorted in the database) and the top
    level's counts by status, so its cost does not grow with the run."""
    from kaon.cli import render

    first = service.run_page(run_id, limit=render.FOLD_ABOVE, metrics_limit=REPORT_METRICS)
    small = first.steps_total <= render.FOLD_ABOVE
    if first.metrics_truncated and (small or not _table_full(first)):
        # Repeated values (epochs), or a small run: the values a table shows as kaon show does.
        more = service.run_page(run_id, limit=1, metrics_limit=METRICS_READ)
        first.metrics, first.metrics_truncated = more.metrics, more.metrics_truncated
    if small:
        render.run_summary(out, first)
        failed = _failed_inside(service, first, run_id)
    else:
        went_badly = tuple(s.value for s in StepStatus if s.value not in render.WENT_WELL)
        problems = service.run_page(
            run_id, statuses=went_badly, limit=render.SUMMARY_PROBLEMS, metrics_limit=0
        )
        # Twice as many as shown: a skipped wait step has times but no duration to show.
        well = service.run_page(
            run_id,
            statuses=tuple(sorted(render.WENT_WELL)),
            sort="duration",
            descending=True,
            limit=2 * render.SUMMARY_SLOWEST,
            metrics_limit=0,
        )
        shown = problems.steps + render.slowest(well.steps)
        render.folded_summary(out, first, shown, first.top_counts)
        _metrics_note(out, first)
        failed_here = None  # the failed tasks of the top level, when not all of them are read
        if problems.steps_total > len(problems.steps):
            failed_here = service.run_page(
                run_id, statuses=("failed",), kind="task", limit=1, metrics_limit=0
            ).steps_total
        failed = _failed_inside(service, problems, run_id, failed_here)
    if failed is not None and failed.steps:
        render.failed_tasks(out, failed, run_id)


def _table_full(page: RunPage) -> bool:
    """Whether ``page``'s metric values fill the metrics table (more (step, metric) pairs
    than it shows), so that reading more of them would show no other row."""
    from kaon.cli.render import METRICS_SHOWN

    return len({(m.path, m.name) for m in page.metrics}) > METRICS_SHOWN


def _metrics_note(out: Console, page: RunPage) -> None:
    """Say that the metrics table holds only the run's first metric values, when it does."""
    if page.metrics_truncated:
        out.print(
            f"(from the run's first {len(page.metrics)} metric values; all of them: "
            "kaon.client run.metrics(), or GET /runs/RUN/metrics)"
        )


def _failed_inside(
    service: KaonService, page: RunPage, run_id: str, failed_here: int | None = None
) -> RunPage | None:
    """The first failed tasks of every level when some failed inside a foreach or loop
    (more failed tasks than the top level has: ``failed_here``, else those of ``page``),
    else None."""
    failed_total = page.tasks.get("failed", 0)
    if failed_here is None:
        failed_here = sum(1 for s in page.steps if s.kind == "task" and s.status == "failed")
    if failed_total <= failed_here:
        return None
    return service.run_page(
        run_id,
        all_steps=True,
        statuses=("failed",),
        kind="task",
        limit=FAILED_SHOWN,
        metrics_limit=0,
    )


def _folded(service: KaonService, out: Console, request: ShowRequest) -> None:
    from kaon.cli import render

    size = request.limit or TOP_PAGE
    offset = request.first_offset(size)
    page = service.run_page(request.run_id, limit=size, offset=offset, metrics_limit=METRICS_READ)
    failed = _failed_inside(service, page, request.run_id)
    if request.as_json:
        _print_json(page)
        return
    render.run_detail(out, page, tracebacks=True, tracebacks_max=FAILED_SHOWN)
    _metrics_note(out, page)
    _steps_footer(out, request, page, offset, size)
    if failed is not None and failed.steps:
        render.failed_tasks(out, failed, request.run_id)


def _steps_footer(
    out: Console, request: ShowRequest, page: RunPage, offset: int, size: int
) -> None:
    """Which steps a page of ``--limit``/``--offset``/``--page`` showed, and how to get the
    next (in the option the page was asked with); a page past the last step says so, rather
    than ``steps 3-100 of 3``."""
    total, last = page.steps_total, offset + len(page.steps)
    if not page.steps:
        if offset:
            out.print(f"no steps at offset {offset} ({total} in all)")
        return
    line = f"steps {offset + 1}-{last} of {total}"
    if last < total:
        if request.page:
            line += f"; more with --page {request.page + 1}"
            line += f" --limit {size}" if request.limit else ""
        else:
            line += f"; more with --offset {last}"
    if offset or last < total:
        out.print(line)


def _status_page(service: KaonService, out: Console, request: ShowRequest) -> None:
    from kaon.cli import render

    size = request.limit or STATUS_PAGE
    offset = request.first_offset(size)
    page = service.run_page(
        request.run_id,
        all_steps=True,
        statuses=(str(request.status),),
        kind="task",
        limit=size,
        offset=offset,
        metrics_limit=0,
    )
    if request.as_json:
        _print_json(page)
        return
    render.header(out, page)
    label = f"{request.status} tasks, all levels"
    if not page.steps:
        out.print(f"no {label} at offset {offset} ({page.steps_total} in all)")
        return
    out.print(render.step_table(page.steps, title=label))
    last = offset + len(page.steps)
    number = offset // size + 1
    hint = f"{label} {offset + 1}-{last} of {page.steps_total}"
    if last < page.steps_total:
        more = f"kaon show {request.run_id} --status {request.status} --page {number + 1}"
        if request.limit:
            more += f" --limit {size}"
        hint += f"; next: {more}"
    out.print(hint)


def _all_levels(service: KaonService, out: Console, request: ShowRequest) -> None:
    """One page when ``--limit`` or ``--page`` is given, else every page, streamed."""
    from kaon.cli import render

    if request.limit or request.page:
        size = request.limit or STREAM_PAGE
        offset = request.first_offset(size)
        page = service.run_page(request.run_id, all_steps=True, limit=size, offset=offset)
        if request.as_json:
            _print_json(page)
            return
        render.run_detail(out, page)
        _steps_footer(out, request, page, offset, size)
        return
    pages = _pages(service, request.run_id, request.offset)
    first = next(pages)
    if request.as_json:
        _stream_json(first, pages)
        return
    render.header(out, first)
    shown = 0
    for page in chain([first], pages):
        if page.steps:
            out.print(render.step_table(page.steps, header=shown == 0))
            shown += len(page.steps)
    render.metrics_table(out, first)


def _pages(service: KaonService, run_id: str, offset: int) -> Iterator[RunPage]:
    """Every page of the run's step runs from ``offset``, one read at a time."""
    at = offset
    while True:
        page = service.run_page(
            run_id, all_steps=True, limit=STREAM_PAGE, offset=at, metrics_limit=0 if at else 1000
        )
        yield page
        at += len(page.steps)
        if not page.steps or at >= page.steps_total:
            return


def _print_json(page: RunPage) -> None:
    sys.stdout.write(json.dumps(page.model_dump(mode="json"), indent=2, default=str) + "\n")
    sys.stdout.flush()


def _stream_json(first: RunPage, rest: Iterator[RunPage]) -> None:
    """One JSON document (a RunPage with every step run), written a page at a time; each step
    run is one line (the C encoder: indenting would cost more than reading the run)."""
    head = first.model_dump(mode="json", exclude={"steps"})
    head["limit"] = head["steps_total"]
    text = json.dumps(head, indent=2, default=str)
    sys.stdout.write(text[: text.rindex("}")].rstrip() + ',\n  "steps": [')
    written = 0
    for page in chain([first], rest):
        lines = [json.dumps(step.model_dump(mode="json"), default=str) for step in page.steps]
        if lines:
            sys.stdout.write(("," if written else "") + "\n    " + ",\n    ".join(lines))
            written += len(lines)
        sys.stdout.flush()
    sys.stdout.write("\n  ]\n}\n")
    sys.stdout.flush()
