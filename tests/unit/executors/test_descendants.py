"""A worker ends once (:func:`kaon.executors._descendants.die`): a second caller (another
thread, a SIGTERM arriving meanwhile) must not cut the first one's cleanup short. A worker
whose engine was killed outright (``kill -9``) called it from two threads at once (the
housekeeping thread saw the parent gone, the main thread's pipe broke) and the first to
reach ``os._exit`` left the other's scratch root half removed in TMPDIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Makes a scratch root, then ends through die() while the root's removal is slowed down,
# and a second die() (SECOND) comes in the middle of that removal.
_TWICE = """
import os, shutil, signal, sys, threading, time
from kaon.executors import _worker
from kaon.executors._descendants import die
from kaon.steptypes.scratch import scratch_folder

folder = scratch_folder("test-")
open(folder + "/data.bin", "wb").write(b"x" * 1000)
print(os.path.dirname(folder), flush=True)
removing = threading.Event()
real_rmtree = shutil.rmtree

def slow_rmtree(path, **kwargs):
    removing.set()
    if SECOND == "signal":
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    real_rmtree(path, **kwargs)

shutil.rmtree = slow_rmtree
if SECOND == "thread":
    threading.Thread(target=die, args=(3,)).start()
    removing.wait()
    die(4)
else:
    signal.signal(signal.SIGTERM, _worker._on_sigterm)
    die(3)
"""


@pytest.mark.parametrize("second", ["thread", "signal"])
def test_a_second_end_waits_for_the_first_ones_cleanup(tmp_path: Path, second: str) -> None:
    code = f"SECOND = {second!r}\n{_TWICE}"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    root = Path(done.stdout.strip())
    assert root.parent == tmp_path, done.stderr
    assert done.returncode == 3, done.stderr  # the first caller's
    assert not root.exists(), "the worker's scratch root was left half removed"
    assert done.stderr == ""
