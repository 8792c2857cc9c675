"""The Ray tests: ``tests/integration/ray_netns/check_*.py``, run inside a private network
namespace with only loopback (this machine may talk only to itself, and Ray binds every
interface). One namespace, one Ray head (token authentication on) for all of them: see
``ray_netns/inside.py``. Needs root (``unshare --net``) and the ``ray`` extra.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSIDE = Path(__file__).resolve().parent / "ray_netns" / "inside.py"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(300)
def test_ray_checks_pass_in_a_private_namespace() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail("Ray is not installed: pip install 'kaon[ray]' (make test installs it)")
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or shutil.which("ip") is None:
        pytest.fail("the Ray tests need root, unshare and ip to make a loopback-only namespace")
    done = subprocess.run(
        [unshare, "--net", "--fork", sys.executable, str(INSIDE), "-q"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
