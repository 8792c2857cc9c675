"""The live views of a running run, fed by its committed events (and its steps' log lines).

:class:`RunProgress` keeps one status per visible step (top-level steps, containers), counts
by status for the many (foreach items and the steps inside them, grouped with ``[*]``, against
the foreach's total), the last progress report of each running step (a bar with done/total
and an ETA) and the most recent log lines; so it stays small for a 100,000-item foreach.
On a terminal :class:`LiveView` redraws it; elsewhere (CI logs) :class:`PlainReporter`
prints one timestamped line per transition, rate-limited progress lines and, with ``logs``,
each step log line prefixed with its step.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kaon.cli._text import shown
from kaon.store.base import EventRecord

_INDEX = re.compile(r"\[[0-9]+\]")
STATUS_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "running": "yellow",
    "retrying": "magenta",
    "succeeded": "green",
    "cached": "green",
    "failed": "bold red",
    "skipped": "dim",
    "cancelled": "red",
    "paused": "magenta",
}
TERMINAL = frozenset({"succeeded", "cached", "failed", "skipped", "cancelled"})
RECENT_LOGS = 6
BAR_WIDTH = 20


@dataclass
class StepProgress:
    """The last progress report of a running step, and when its reports began (for ETA)."""

    fraction: float | None
    done: float | None
    total: float | None
    message: str
    first_at: float
    first_fraction: float
    at: float

    def eta_s(self) -> float | None:
        """Seconds left at the rate seen since the first report (None: no rate yet)."""
        if self.fraction is None or self.at <= self.first_at:
            return None
        rate = (self.fraction - self.first_fraction) / (self.at - self.first_at)
        return (1.0 - self.fraction) / rate if rate > 0 else None

    def text(self) -> str:
        """``30/200 15% ETA 12s msg``, or ``15%``, or the message alone."""
        parts: list[str] = []
        if self.done is not None and self.total is not None:
            parts.append(f"{_num(self.done)}/{_num(self.total)}")
        if self.fraction is not None:
            parts.append(f"{self.fraction:.0%}")
            eta = self.eta_s()
            if eta is not None and self.fraction < 1.0:
                parts.append(f"ETA {_duration(eta)}")
        if self.message:
            parts.append(self.message)
        return " ".join(parts)


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text progress bar: ``[#####.....]``."""
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class RunProgress:
    """Aggregates the events of one run. Thread-safe (the engine thread feeds it)."""

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.status = "pending"
        self.error: str | None = None
        self.started = time.monotonic()
        self.steps: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        self.ended_at: dict[str, float] = {}
        self.groups: dict[str, Counter[str]] = {}
        self.totals: dict[str, int] = {}  # a foreach's group -> its number of items
        self.progress: dict[str, StepProgress] = {}
        self.logs: deque[tuple[str, str]] = deque(maxlen=RECENT_LOGS)
        self.paths: dict[int, str] = {}  # step run id -> path
        self.running: dict[str, None] = {}  # running step paths, oldest first
        self._group_status: dict[str, str] = {}
        self._lock = threading.Lock()

    def feed(self, events: list[EventRecord]) -> None:
        """Apply committed events."""
        with self._lock:
            for event in events:
                if event.run_id == self.run_id:
                    self._apply(event)

    def _apply(self, event: EventRecord) -> None:
        data = event.data
        if event.kind == "run":
            self.status = str(data.get("status", self.status))
            self.error = data.get("error") or self.error
        elif event.kind == "step":
            path = str(data["path"])
            if event.step_run_id is not None:
                self.paths[event.step_run_id] = path
            self._step(path, str(data["status"]), event.at)
        elif event.kind == "foreach":
            self.totals[f"{_INDEX.sub('[*]', str(data['path']))}[*]"] = int(data["items"])
        elif event.kind == "progress" and event.step_run_id in self.paths:
            self._progress(self.paths[event.step_run_id], event)

    def _progress(self, path: str, event: EventRecord) -> None:
        data = event.data
        fraction = data.get("fraction")
        before = self.progress.get(path)
        first_fraction = float(fraction) if fraction is not None else 0.0
        self.progress[path] = StepProgress(
            fraction=None if fraction is None else float(fraction),
            done=data.get("done"),
            total=data.get("total"),
            message=str(data.get("message") or ""),
            first_at=before.first_at if before else event.at,
            first_fraction=before.first_fraction if before else first_fraction,
            at=event.at,
        )

    def _step(self, path: str, status: str, at: float) -> None:
        if status == "running":
            self.running[path] = None
        else:
            self.running.pop(path, None)
            if status in TERMINAL:
                self.progress.pop(path, None)
        if "[" not in path:
            self.steps[path] = status
            if status == "running":
                self.started_at.setdefault(path, at)
            elif status not in ("pending", "queued", "retrying"):
                self.ended_at[path] = at
            return
        group = _INDEX.sub("[*]", path)
        counts = self.groups.setdefault(group, Counter())
        old = self._group_status.get(path)
        if old is not None:
            counts[old] -= 1
        counts[status] += 1
        if status in TERMINAL:
            self._group_status.pop(path, None)
        else:
            self._group_status[path] = status

    def feed_logs(self, path: str, lines: list[str]) -> None:
        """Remember a step's latest log lines (the view shows the most recent few)."""
        with self._lock:
            for line in lines:
                self.logs.append((path, line))

    def group_line(self, group: str) -> str:
        """``3 running, 12 succeeded of 100`` (counts without pending, and the total)."""
        counts = self.groups.get(group, Counter())
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n > 0 and s != "pending")
        total = self.totals.get(group)
        if total is None:
            return shown
        done = sum(n for s, n in counts.items() if s in TERMINAL)
        return f"{shown or 'none started'} ({done} of {total} done)"

    def render(self) -> RenderableType:
        """A table of steps (with progress bars) and foreach counts, then recent log lines."""
        with self._lock:
            elapsed = time.monotonic() - self.started
            title = Text.assemble(
                (f"{self.workflow} ", "bold"),
                (self.run_id, "cyan"),
                "  ",
                (self.status, STATUS_STYLE.get(self.status, "")),
                f"  {elapsed:6.1f}s",
            )
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for column in ("step", "status", "time", "progress / items"):
                table.add_column(column, justify="right" if column == "time" else "left")
            for path, status in self.steps.items():
                table.add_row(path, _styled(status), self.elapsed(path), self._bar(path))
            for group in self.groups:
                table.add_row(Text(group, style="dim"), "", "", self.group_line(group))
            for path in list(self.running)[-3:]:
                if "[" in path and path in self.progress:
                    table.add_row(Text(f"  {path}", style="dim"), "", "", self._bar(path))
            logs = [Text(f"[{path}] {line}", style="dim") for path, line in self.logs]
            return Group(title, table, *logs)

    def _bar(self, path: str) -> Text:
        report = self.progress.get(path)
        if report is None:
            return Text("")
        if report.fraction is None:
            return Text(report.text(), style="dim")
        return Text.assemble((bar(report.fraction), "cyan"), " ", report.text())

    def elapsed(self, path: str) -> str:
        """How long a top-level step ran (so far), e.g. ``1.25s``; empty before it started."""
        start = self.started_at.get(path)
        if start is None:
            return ""
        end = self.ended_at.get(path, time.time())
        return f"{end - start:.2f}s"


def _styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class LiveView:
    """A rich Live display around a :class:`RunProgress` (only on a terminal)."""

    def __init__(self, progress: RunProgress, console: Console) -> None:
        self.progress = progress
        self._live = Live(
            _Renderable(progress), console=console, refresh_per_second=8, transient=False
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)


class _Renderable:
    def __init__(self, progress: RunProgress) -> None:
        self._progress = progress

    def __rich__(self) -> RenderableType:
        return self._progress.render()


def stamp(at: float) -> str:
    """``2026-12-02T03:01:02Z``: a UTC timestamp for CI logs."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class PlainReporter:
    """Lines for logs that are not a terminal: one per transition, each timestamped.

    A top-level step's every status, a foreach's counts (at most every ``every_s`` seconds,
    and when all its items are done), a failed item, progress (at most every ``every_s`` per
    step, and when complete), the run's status; with ``logs`` each step log line as
    ``[step] text``.
    """

    def __init__(
        self,
        progress: RunProgress,
        *,
        logs: bool = False,
        stream: TextIO | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = progress
        self.logs = logs
        self._stream = stream
        self.every_s = every_s
        self._clock = clock
        self._said: dict[str, float] = {}
        self._finished: set[str] = set()  # foreach groups whose last line was printed
        self._last: tuple[float, str] | None = None  # the run's end, said by finish()
        self._lock = threading.Lock()

    def _write(self, at: float, text: str) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"{stamp(at)} {shown(text)}\n")
            stream.flush()

    def _due(self, key: str, now: float, final: bool = False) -> bool:
        last = self._said.get(key)
        if final or last is None or now - last >= self.every_s:
            self._said[key] = now
            return True
        return False

    def feed(self, events: list[EventRecord]) -> None:
        """Apply each event to the state, then print what it changed."""
        for event in events:
            if event.run_id == self.state.run_id:
                self.state.feed([event])
                self._line(event)

    def _line(self, event: EventRecord) -> None:
        data = event.data
        if event.kind == "run":
            error = f": {data['error']}" if data.get("error") else ""
            line = (event.at, f"run {event.run_id} {data.get('status')}{error}")
            if str(data.get("status")) in TERMINAL:
                self._last = line  # said by finish(), after the steps' last log lines
            else:
                self._write(*line)
        elif event.kind == "step":
            path, status = str(data["path"]), str(data["status"])
            if "[" not in path:
                took = self.state.elapsed(path) if status in TERMINAL else ""
                self._write(event.at, f"{path} {status}" + (f" ({took})" if took else ""))
                return
            group = _INDEX.sub("[*]", path)
            if status == "failed":
                self._write(event.at, f"{path} failed")
            if group in self._finished:
                return
            counts = self.state.group_line(group)
            total = self.state.totals.get(group)
            done = total is not None and f"({total} of {total} done)" in counts
            if done:
                self._finished.add(group)
            if self._due(group, self._clock(), final=done):
                self._write(event.at, f"{group} {counts}")
        elif event.kind == "progress" and event.step_run_id in self.state.paths:
            path = self.state.paths[event.step_run_id]
            report = self.state.progress.get(path)
            if report is not None:
                final = report.fraction is not None and report.fraction >= 1.0
                if self._due(f"progress:{path}", self._clock(), final=final):
                    self._write(event.at, f"{path} {report.text()}")

    def finish(self) -> None:
        """Print the run's final status line (held back until the last log lines are out)."""
        if self._last is not None:
            self._write(*self._last)
            self._last = None

    def feed_logs(self, path: str, lines: list[str]) -> None:
        """Print a step's log lines (with ``logs``), each prefixed with its step."""
        self.state.feed_logs(path, lines)
        if self.logs:
            now = self._clock()
            for line in lines:
                self._write(now, f"[{path}] {line}")
