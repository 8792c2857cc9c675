"""A module constant that is an enum member or a frozen dataclass instance is hashed by
value, but only its *name* / fields were encoded: the enum member's value and the methods of
its (project) class were not covered, so editing them was a stale cache hit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONF = """
import dataclasses, enum

class Mode(enum.Enum):
    FAST = {value}
    def speed(self):
        return {speed}

@dataclasses.dataclass(frozen=True)
class Cfg:
    a: int = 1
    def weight(self):
        return self.a * {weight}

MODE = Mode.FAST
CFG = Cfg()
"""

STEPS = """
from conf import CFG, MODE

def use_value():
    return MODE.value

def use_method():
    return MODE.speed()

def use_dataclass_method():
    return CFG.weight()
"""

PRINT = (
    "import sys; sys.path.insert(0, sys.argv[1]); import steps;"
    "from kaon.steptypes.fingerprint import code_fingerprint as f;"
    "print(f(steps.use_value), f(steps.use_method), f(steps.use_dataclass_method))"
)


def _fingerprints(folder: Path, value: int, speed: int, weight: int) -> list[str]:
    (folder / "conf.py").write_text(CONF.format(value=value, speed=speed, weight=weight))
    (folder / "steps.py").write_text(STEPS)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PRINT, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout.split()


def test_enum_member_value_is_covered(tmp_path: Path) -> None:
    before = _fingerprints(tmp_path, 1, 100, 10)
    after = _fingerprints(tmp_path, 3, 100, 10)
    assert before[0] != after[0], "Mode.FAST = 1 -> 3 must change use_value's fingerprint"


def test_enum_method_is_covered(tmp_path: Path) -> None:
    before = _fingerprints(tmp_path, 1, 100, 10)
    after = _fingerprints(tmp_path, 1, 7, 10)
    assert before[1] != after[1], "Mode.speed edited must change use_method's fingerprint"


def test_frozen_dataclass_method_is_covered(tmp_path: Path) -> None:
    before = _fingerprints(tmp_path, 1, 100, 10)
    after = _fingerprints(tmp_path, 1, 100, 99)
    assert before[2] != after[2], "Cfg.weight edited must change the fingerprint"


def test_unchanged_code_keeps_its_fingerprint(tmp_path: Path) -> None:
    assert _fingerprints(tmp_path, 1, 100, 10) == _fingerprints(tmp_path, 1, 100, 10)
