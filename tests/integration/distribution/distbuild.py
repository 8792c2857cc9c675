"""Helpers of the distribution tests (packaging, extras, container image).

Commands run without ``PYTHONPATH`` and
``VIRTUAL_ENV``, so a fresh virtualenv sees only what was installed in it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 110) -> str:
    """Run a command with the clean environment; its stdout (fails the test on an error)."""
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=CLEAN_ENV,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout
