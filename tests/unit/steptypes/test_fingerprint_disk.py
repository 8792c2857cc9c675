"""The notebook case the README names: a project module edited on disk between two
`kaon.run` calls of one process. The engine fingerprints the *loaded* module (FACTOR = 2)
while the process executor's workers load the file anew (FACTOR = 3): the new code's result
(33) was recorded under the old code's key, and a later fresh run with FACTOR = 2 on disk
was a cache hit returning 33 instead of 22."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = """
import kaon
import helper

@kaon.step
def scaled(x: int) -> int:
    return x * helper.FACTOR

@kaon.workflow(cache=True)
def nbflow(x: int = 10):
    scaled(x)
"""

SESSION = """
import pathlib, sys
sys.path.insert(0, ".")
import kaon
from flow import nbflow
kaon.run(nbflow, executor="process")
pathlib.Path("helper.py").write_text("FACTOR = 3\\n")   # edited while the "notebook" runs
detail = kaon.run(nbflow, executor="process", x=11)
print(detail.steps[0].outputs["return"].value)
"""


def test_a_module_edited_in_a_session_does_not_poison_the_cache(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "helper.py").write_text("FACTOR = 2\n")
    (tmp_path / "session.py").write_text(SESSION)
    env = {**os.environ, "KAON_HOME": str(tmp_path / ".kaon"), "PYTHONDONTWRITEBYTECODE": "1"}
    session = subprocess.run(
        [sys.executable, "session.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=180,
    )
    assert session.returncode == 0, session.stderr
    (tmp_path / "helper.py").write_text("FACTOR = 2\n")  # back to the code of the first run
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "run", "flow.py", "-p", "x=11", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    detail = json.loads(done.stdout)
    assert detail["steps"][0]["outputs"]["return"]["value"] == 22  # 11 * FACTOR (2)
