"""Following a run from the CLI: its step logs, tailed while it runs, and how it is shown.

:class:`LogTail` polls the run's new log lines (every step's, in one read after the last
line id it saw) in a thread, through the service (the local store, or the server's
``GET /runs/{id}/log``), and hands them to the view grouped by step; :class:`Output` is what
the ``--quiet``, ``--logs`` and ``--events`` options ask for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from kaon.errors import KaonError

ReadLog = Callable[[int], list[tuple[int, str, str]]]
"""``after_id -> [(line id, step path, text), ...]``: the run's log lines after an id."""


@dataclass(frozen=True)
class Output:
    """How a followed run is shown besides the live view (terminal) or CI lines (not)."""

    quiet: bool = False  # no view, no lines: the run id, then one final line
    logs: bool | None = None  # every step log line as ``[step] text`` (None: off a terminal)
    events: bool = False  # NDJSON: one event per line, then the run's detail


class LogTail:
    """Polls a run's new log lines every ``every_s`` seconds in a thread."""

    def __init__(
        self,
        read: ReadLog,
        sink: Callable[[str, list[str]], None],
        *,
        every_s: float = 0.5,
        after_id: int = 0,
    ) -> None:
        self._read = read
        self._sink = sink
        self._every_s = every_s
        self._cursor = after_id  # lines up to it were written before: not this follow's
        self._stop = threading.Event()
        self._lock = threading.Lock()
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
        if exc_type is None:  # the lines written after the last poll
            for _ in range(1000):
                if not self.poll():
                    break

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self.poll()

    def poll(self) -> int:
        """Read and hand over the new lines, grouped by step; returns how many there were."""
        with self._lock:
            try:
                lines = self._read(self._cursor)
            except KaonError:
                return 0  # a transient failure: next time
            if not lines:
                return 0
            self._cursor = lines[-1][0]
            group: list[str] = []
            path = lines[0][1]
            for _, where, text in lines:
                if where != path:
                    self._sink(path, group)
                    group, path = [], where
                group.append(text)
            self._sink(path, group)
            return len(lines)
