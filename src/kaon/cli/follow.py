"""Following a run from the CLI: its step logs, tailed while it runs, and how it is shown.

:class:`LogTail` polls the log lines of the run's running steps (a few at a time: the
top-level ones first) in a thread, through the service (the local store, or the server's
``GET /runs/{id}/log``), and hands new lines to the view; :class:`Output` is what the
``--quiet``, ``--logs`` and ``--events`` options ask for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from kaon.cli.live import RunProgress
from kaon.errors import KaonError

ReadLog = Callable[[str, int], list[tuple[int, str]]]
"""``(path, after_id) -> [(line id, text), ...]``: a step's log lines after an id."""


@dataclass(frozen=True)
class Output:
    """How a followed run is shown besides the live view (terminal) or CI lines (not)."""

    quiet: bool = False  # no view, no lines: the run id, then one final line
    logs: bool | None = None  # every step log line as ``[step] text`` (None: off a terminal)
    events: bool = False  # NDJSON: one event per line, then the run's detail


class LogTail:
    """Polls the logs of up to ``limit`` running steps every ``every_s`` in a thread."""

    def __init__(
        self,
        read: ReadLog,
        progress: RunProgress,
        sink: Callable[[str, list[str]], None],
        *,
        every_s: float = 0.5,
        limit: int = 8,
    ) -> None:
        self._read = read
        self._progress = progress
        self._sink = sink
        self._every_s = every_s
        self._limit = limit
        self._cursors: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread and the feed's flushes poll in turn
        self._thread = threading.Thread(target=self._loop, name="kaon-log-tail", daemon=True)

    def __enter__(self) -> LogTail:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if exc_type is None:  # the lines written after the last poll, and by quick steps
            paths = list(dict.fromkeys([*self._progress.ran, *self._cursors]))
            for _ in range(100):
                if not self.poll(paths):
                    break

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self.poll(self._progress.running_paths(self._limit))

    def poll(self, paths: list[str]) -> int:
        """Read and hand over the new lines of ``paths``; returns how many there were."""
        with self._lock:
            return self._poll(paths)

    def _poll(self, paths: list[str]) -> int:
        count = 0
        for path in paths:
            after = self._cursors.get(path, 0)
            try:
                lines = self._read(path, after)
            except KaonError:
                continue  # a step not recorded yet, or a transient failure: next time
            if lines:
                count += len(lines)
                self._cursors[path] = lines[-1][0]
                self._sink(path, [text for _, text in lines])
            else:
                self._cursors.setdefault(path, after)
        return count
