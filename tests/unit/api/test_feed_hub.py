"""The shared feed reader: what its buffer covers, per-run reads, and trimming."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kaon.api.feed_hub import FeedHub
from kaon.store import open_store
from kaon.store.base import EventRecord, WriteBatch


def test_the_buffer_covers_everything_above_its_floor(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    stopping = threading.Event()
    try:
        store.write(WriteBatch(events=[EventRecord("old", "progress", 0.0, {})]))
        hub = FeedHub(store, stopping, keep=3)
        hub.start()  # starts at the head: event 1 is below the buffer
        for n in range(8):
            run_id = "a" if n % 2 else "b"
            store.write(WriteBatch(events=[EventRecord(run_id, "progress", float(n), {})]))
        deadline = time.time() + 10
        while (hub.read(8, None, 100) or ([], 0))[1] < 9 and time.time() < deadline:
            time.sleep(0.02)
        assert hub.read(0, None, 100) is None  # older than the buffer: read the store
        found = hub.read(6, None, 100)
        assert found is not None
        assert [e.id for e in found[0]] == [7, 8, 9] and found[1] == 9
        of_b = hub.read(6, "b", 100)  # run b wrote the even ids
        assert of_b is not None
        # Past other runs' events: the cursor goes to the head, not to the last match.
        assert [e.id for e in of_b[0]] == [8] and of_b[1] == 9
        limited = hub.read(6, None, 2)
        assert limited is not None and [e.id for e in limited[0]] == [7, 8] and limited[1] == 8
    finally:
        stopping.set()
        store.close()
