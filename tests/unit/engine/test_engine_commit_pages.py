"""A chain step's commit writes few pages of the store file, and small ones: the step's first
attempt lives in its step run's row (``kaon.store._rows.FIRST_ATTEMPT``: no row of ``attempts``
and its two indexes), a top-level step has no entry in the parent index, and a new store's
pages are 2 KiB (``kaon.store._lite.PAGE_SIZE``). Each page is a frame of the write-ahead log,
written with two system calls, checksummed, and copied to the database file by the next
checkpoint, on every commit."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest
from conftest import Harness, flow, task

from kaon.model.status import RunStatus
from kaon.store import _lite

STEPS = 300


def _page_size(wal: Path) -> int:
    return int(struct.unpack(">I", wal.read_bytes()[8:12])[0])


def _commits(wal: Path) -> list[int]:
    """The number of frames of each commit in the log, oldest first."""
    data = wal.read_bytes()
    page = _page_size(wal)
    sizes, frames, offset = [], 0, 32
    while offset + 24 + page <= len(data):
        frames += 1
        if struct.unpack(">I", data[offset + 4 : offset + 8])[0]:  # the commit's last frame
            sizes.append(frames)
            frames = 0
        offset += 24 + page
    return sizes


def test_a_chain_step_commits_at_most_eighteen_pages_of_two_kib(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)  # the log keeps every frame
    steps = [
        task(f"s{i}", "const", needs=(f"s{i - 1}",) if i else (), inputs={"value": i})
        for i in range(STEPS)
    ]
    run_id = inline.create(flow(*steps))
    engine = inline.engine()
    keep = sqlite3.connect(inline.tmp / "kaon.db")  # closing the store must not checkpoint
    try:
        keep.execute("SELECT count(*) FROM runs").fetchone()
        assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED
        commits = _commits(inline.tmp / "kaon.db-wal")
        page = _page_size(inline.tmp / "kaon.db-wal")
        assert keep.execute("PRAGMA page_size").fetchone() == (page,) == (2048,)
        assert keep.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
    finally:
        keep.close()
    attempts = inline.store.attempts(run_id)
    assert [(a.number, a.status) for a in attempts] == [(1, "succeeded")] * STEPS
    assert all(a.worker and a.ended_at and a.started_at for a in attempts)
    # One commit per step (its start with its predecessor's end); the last 200 are the
    # middle of the chain. Measured: 15.9 pages of 2 KiB per commit (33 KB of log); with 4 KiB
    # pages 13.3 (55 KB), and 17.1 (70 KB) before the first attempt was folded into the step
    # run's row and the parent index made partial.
    middle = commits[-STEPS + 50 : -50]
    assert len(middle) == 200, len(commits)
    assert sum(middle) / len(middle) <= 18, middle
    assert sum(middle) / len(middle) * (page + 24) <= 40_000
