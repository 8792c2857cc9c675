"""A fingerprint (or push evaluation) child never outlives the process that started it.

The child runs in a session of its own (so that a timeout kills whatever it started), and so
the kernel does not end it with its parent's process group: a server killed with ``-9``
while a step's module was importing in a fingerprint child left that child running on, for
as long as the module's top-level code took (its wall-clock timeout was the dead parent's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

_PARENT = textwrap.dedent(
    """
    import sys
    from kaon.service.fingerprint_sandbox import IsolatedFingerprints
    from kaon.service.push_sandbox import SandboxLimits

    fingerprint = IsolatedFingerprints(SandboxLimits(timeout_s=120))
    fingerprint("python", {"file": sys.argv[1], "function": "step"})
    """
)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_a_fingerprint_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    module = tmp_path / "slow_import.py"
    module.write_text("import time\ntime.sleep(60)\n\ndef step():\n    return 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(module)], env=env)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not children:
            found = _children(parent.pid)
            children = [c for c in found if "kaon.service._evaluate" in " ".join(c.cmdline())]
            time.sleep(0.05)
        assert children, "no fingerprint child started"
        time.sleep(1.0)  # the child is importing the module (sleeping at its top level)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == [], f"fingerprint child(ren) outlived their killed parent: {alive}"
    finally:
        for child in children:
            if child.is_running():
                child.kill()
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
