"""The live terminal view of a running run, fed by the engine's committed events.

It keeps one status per visible step (top-level steps, containers) and counts by status for
the many (foreach items and the steps inside them, grouped with ``[*]``), so it stays small
for a 100,000-item foreach.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
}


class RunProgress:
    """Aggregates step events of one run. Thread-safe (the engine thread feeds it)."""

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
        self._group_status: dict[str, str] = {}
        self._lock = threading.Lock()

    def feed(self, events: list[EventRecord]) -> None:
        """Apply committed events."""
        with self._lock:
            for event in events:
                if event.run_id != self.run_id:
                    continue
                if event.kind == "run":
                    self.status = str(event.data.get("status", self.status))
                    self.error = event.data.get("error") or self.error
                elif event.kind == "step":
                    self._step(str(event.data["path"]), str(event.data["status"]), event.at)

    def _step(self, path: str, status: str, at: float) -> None:
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
        terminal = status in ("succeeded", "cached", "failed", "skipped", "cancelled")
        if terminal:
            self._group_status.pop(path, None)
        else:
            self._group_status[path] = status

    def render(self) -> RenderableType:
        """A table of steps and foreach counts."""
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
            table.add_column("step")
            table.add_column("status")
            table.add_column("time", justify="right")
            table.add_column("items")
            for path, status in self.steps.items():
                table.add_row(path, _styled(status), self._elapsed(path), "")
            for group, counts in self.groups.items():
                shown = ", ".join(
                    f"{n} {s}" for s, n in sorted(counts.items()) if n > 0 and s != "pending"
                )
                table.add_row(Text(group, style="dim"), "", "", shown)
            return Group(title, table)

    def _elapsed(self, path: str) -> str:
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
