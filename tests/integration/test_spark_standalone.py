"""The ``spark`` step type against a standalone Spark cluster (a master and a worker started
from the installed pyspark), inside a private network namespace with only loopback (this
machine may talk only to itself): see ``spark_netns/standalone_inside.py``. Needs root
(``unshare --net``), Java and the ``spark`` extra.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSIDE = Path(__file__).resolve().parent / "spark_netns" / "standalone_inside.py"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(150)
def test_a_spark_step_runs_on_a_standalone_master() -> None:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or shutil.which("ip") is None:
        pytest.fail("the Spark cluster test needs root, unshare and ip (a loopback-only namespace)")
    if shutil.which("java") is None:
        pytest.fail("the Spark cluster test needs Java (make test installs it)")
    done = subprocess.run(
        [unshare, "--net", "--fork", sys.executable, str(INSIDE)],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "spark standalone: ok" in done.stdout
