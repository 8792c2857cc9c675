"""A step whose code tests membership in a literal set (``x in {"alpha", "beta"}``) was
never a cache hit: Python compiles the literal to a ``frozenset`` constant, and the
fingerprint took the constant's ``repr``, whose order follows the string hashes that every
process seeds anew. Each run computed another key and executed the step again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STEP = """
def pick(x):
    if x in {"alpha", "beta", "gamma", "delta", "epsilon"}:
        return 1
    return (x, frozenset({"one", "two", "three"}))[0] in {("u", "v"), ("w", "x")}
"""

PRINT = """
import sys
from kaon.steptypes.codeload import load_file_module
from kaon.steptypes.fingerprint import code_fingerprint
print(code_fingerprint(load_file_module(sys.argv[1]).pick))
"""


def _fingerprint(path: Path, seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PRINT, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_set_literal_in_code_has_one_fingerprint_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(STEP)
    seen = {_fingerprint(path, seed) for seed in range(6)}
    assert len(seen) == 1, seen


def test_another_set_literal_is_another_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(STEP)
    before = _fingerprint(path, 0)
    path.write_text(STEP.replace('"delta", ', ""))
    assert _fingerprint(path, 0) != before
