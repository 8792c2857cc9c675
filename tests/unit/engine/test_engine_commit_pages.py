"""A chain step's commit writes few pages of the store file: the step's first attempt lives
in its step run's row (``kaon.store.sql.FIRST_ATTEMPT``: no row of ``attempts`` and its two
indexes), and a top-level step has no entry in the parent index. Each page is a frame of the
write-ahead log, written with two system calls and checksummed, on every commit."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest
from conftest import Harness, flow, task

from kaon.model.status import RunStatus
from kaon.store import _lite

STEPS = 300


def _commits(wal: Path) -> list[int]:
    """The number of frames of each commit in the log, oldest first."""
    data = wal.read_bytes()
    page = struct.unpack(">I", data[8:12])[0]
    sizes, frames, offset = [], 0, 32
    while offset + 24 + page <= len(data):
        frames += 1
        if struct.unpack(">I", data[offset + 4 : offset + 8])[0]:  # the commit's last frame
            sizes.append(frames)
            frames = 0
        offset += 24 + page
    return sizes


def test_a_chain_step_commits_at_most_fifteen_pages(
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
        assert keep.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
    finally:
        keep.close()
    attempts = inline.store.attempts(run_id)
    assert [(a.number, a.status) for a in attempts] == [(1, "succeeded")] * STEPS
    assert all(a.worker and a.ended_at and a.started_at for a in attempts)
    # One commit per step (its start with its predecessor's end); the last 200 are the
    # middle of the chain. Measured: 13.3 pages per commit; 17.1 before the first attempt
    # was folded into the step run's row and the parent index made partial.
    middle = commits[-STEPS + 50 : -50]
    assert len(middle) == 200, len(commits)
    assert sum(middle) / len(middle) <= 15, middle
