"""Lock files of engines that died long ago are removed by the next engine that starts.

An engine killed with ``-9`` leaves its lock file (it is the proof of its death, for whoever
takes over its leases); one whose runs were never resumed left it forever: hundreds piled up
in ``/tmp/kaon-engines-<uid>``. Files older than any lease whose lock nobody holds go.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from kaon.engine.liveness import STALE_LOCK_S, EngineLock, new_owner, remove_stale_locks


def _lock_file(folder: Path, name: str, age_s: float) -> Path:
    path = folder / f"{name}.lock"
    path.write_text("")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_an_engine_removes_lock_files_of_engines_long_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAON_ENGINE_LOCK_DIR", str(tmp_path))
    dead_long_ago = _lock_file(tmp_path, "host_1_a", STALE_LOCK_S + 60)
    dead_just_now = _lock_file(tmp_path, "host_2_b", 5)  # may prove a live lease's death
    alive = _lock_file(tmp_path, "host_3_c", STALE_LOCK_S + 60)
    held = os.open(alive, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its engine lives, however old
    try:
        lock = EngineLock(new_owner())
        try:
            assert not dead_long_ago.exists()
            assert dead_just_now.exists() and alive.exists() and lock.path.exists()
        finally:
            lock.release()
    finally:
        os.close(held)
    assert remove_stale_locks(tmp_path, older_than_s=0) == 2  # the two dead ones now
