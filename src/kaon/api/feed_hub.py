"""One reader of the event feed per API process, shared by every live stream.

Each ``GET /events`` follower used to poll the store itself (10 queries a second each): 20
followers cost 20 times one. The hub reads new events once for all of them (a thread, started
by the first follower) and keeps the most recent ones in memory; a follower reads the hub's
buffer, and the store only to catch up on what is older than the buffer (a reconnect after a
long pause, or a run's history). Ids become visible in increasing order on every store (see
:mod:`kaon.store.feed`), so "everything above the buffer's floor is in the buffer" holds.
"""

from __future__ import annotations

import bisect
import threading

from kaon.errors import KaonError
from kaon.store.base import EventRecord, StateStore

POLL_S = 0.05
BATCH = 500


class FeedHub:
    """The recent tail of the events table, read by one thread (see the module docs).

    ``keep`` events are kept; the thread ends when ``stopping`` is set.
    """

    def __init__(self, store: StateStore, stopping: threading.Event, *, keep: int = 20_000) -> None:
        self.store = store
        self.stopping = stopping
        self._events: list[EventRecord] = []
        self._ids: list[int] = []
        self._keep = keep
        self._floor = 0  # every event with an id above it (up to the head) is in the buffer
        self._head = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading (once): the buffer begins at the feed's head now."""
        with self._lock:
            if self._thread is not None:
                return
            self._floor = self._head = self.store.last_event_id()
            self._thread = threading.Thread(target=self._run, name="kaon-feed", daemon=True)
            self._thread.start()

    def read(
        self, cursor: int, run_id: str | None, limit: int
    ) -> tuple[list[EventRecord], int] | None:
        """Buffered events with ids above ``cursor`` (of one run, if given), at most
        ``limit``, and the cursor to continue from (past events of other runs); None when
        ``cursor`` is below what the buffer covers (read the store instead)."""
        with self._lock:
            if cursor < self._floor:
                return None
            start = bisect.bisect_right(self._ids, cursor)
            found: list[EventRecord] = []
            for record in self._events[start : start + limit if run_id is None else None]:
                if run_id is None or record.run_id == run_id:
                    found.append(record)
                    if len(found) >= limit:
                        return found, record.id or cursor
            return found, max(cursor, self._head)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = self.store.events(after_id=self._head, limit=BATCH)
            except KaonError:
                batch = []  # the store is down for a moment: followers wait, nothing is lost
            if batch:
                self._append(batch)
            if len(batch) < BATCH:
                self.stopping.wait(POLL_S)

    def _append(self, batch: list[EventRecord]) -> None:
        with self._lock:
            for record in batch:
                assert record.id is not None
                self._events.append(record)
                self._ids.append(record.id)
            self._head = self._ids[-1]
            if len(self._events) > 2 * self._keep:  # trim in bulk: amortized O(1) per event
                drop = len(self._events) - self._keep
                self._floor = self._ids[drop - 1]
                del self._events[:drop]
                del self._ids[:drop]
