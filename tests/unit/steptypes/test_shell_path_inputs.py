"""A file or folder artifact (a pathlib.Path output) passed to a shell step must arrive as
the path itself in KAON_INPUT_<NAME>, as a string does. Before the fix it arrived
JSON-encoded, with its quotes ("\\"/root/.cache/.../outdir\\""), so `ls "$KAON_INPUT_DIR"`
failed: no shell step could use a folder artifact without jq."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = """
import pathlib
import kaon

@kaon.step
def make() -> pathlib.Path:
    folder = pathlib.Path("made").absolute()
    folder.mkdir(exist_ok=True)
    (folder / "x.txt").write_text("hello")
    return folder

@kaon.workflow
def paths():
    folder = make()
    script = 'test -d "$KAON_INPUT_DIR" && echo "::kaon::output text=$(cat $KAON_INPUT_DIR/x.txt)"'
    kaon.shell(script, id="use", inputs={"dir": folder})
"""


def test_a_folder_artifact_reaches_a_shell_step_as_its_path(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    env = {
        **os.environ,
        "KAON_HOME": str(tmp_path / ".kaon"),
        "KAON_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "run", str(tmp_path / "flow.py"), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    detail = json.loads(done.stdout)
    use = next(s for s in detail["steps"] if s["step_id"] == "use")
    assert use["status"] == "succeeded", use["error"]
    assert use["outputs"]["text"]["value"] == "hello"
