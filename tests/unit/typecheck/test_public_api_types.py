"""The public API is typed: mypy --strict and pyright read a step's signature through
``@kaon.step``, the options' Literal types and ``timedelta`` durations, and report exactly the
mistakes marked ``# error`` in typed_sample.py."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).with_name("typed_sample.py")
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _expected() -> set[int]:
    lines = SAMPLE.read_text().splitlines()
    return {n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# error")}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


@pytest.mark.timeout(300)  # a first run, on a cold cache, reads all of Kaon's imports
def test_mypy_strict_reports_exactly_the_marked_lines(tmp_path: Path) -> None:
    # The project's own configuration and cache (``make typecheck`` has just filled it for
    # src/kaon): only the sample is new, so the check takes seconds, not a minute.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            str(SAMPLE.relative_to(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
        env=_env(),
    )
    reported = {
        int(m.group(1))
        for m in re.finditer(
            rf"^{re.escape(str(SAMPLE.relative_to(ROOT)))}:(\d+): error", done.stdout, re.M
        )
    }
    assert reported == _expected(), done.stdout


@pytest.mark.skipif(importlib.util.find_spec("pyright") is None, reason="pyright not installed")
def test_pyright_reports_exactly_the_marked_lines(tmp_path: Path) -> None:
    config = tmp_path / "pyrightconfig.json"
    config.write_text(
        '{"typeCheckingMode": "strict", "pythonVersion": "3.11", '
        f'"extraPaths": ["{ROOT / "src"}"], "reportUnusedExpression": false, '
        '"reportUnusedCallResult": false}'
    )
    done = subprocess.run(
        [sys.executable, "-m", "pyright", "--project", str(config), str(SAMPLE)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
        env=_env(),
    )
    reported = {
        int(m.group(1)) for m in re.finditer(r"typed_sample\.py:(\d+):\d+ - error", done.stdout)
    }
    assert reported == _expected(), done.stdout
