"""A step's options are not its code: raising a step's ``retry`` or ``timeout``, giving it
``resources`` or another ``id`` made its next run a cache miss, because the fingerprint took
the function's source with the ``@kaon.step(...)`` line above it. A decorator that is not
Kaon's (``functools.lru_cache(maxsize=...)``, a library's) still counts as written."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kaon.steptypes.python import PythonStepType

FLOW = """
import functools
import kaon

@kaon.step(cache=True, retry=kaon.Retry(max_attempts=RETRIES), timeout=TIMEOUT)
def scaled(x: float) -> float:
    return x * 2

@kaon.step(
    cache=True,
    id=NAME,
)
@functools.lru_cache(maxsize=SIZE)
def cached(x: float) -> float:
    return x + 1

@kaon.workflow
def optionsflow(x: float = 1.0):
    scaled(x)
    cached(x)
"""


def _fingerprints(folder: Path, **values: str) -> tuple[str, str]:
    text = textwrap.dedent(FLOW)
    for name, value in values.items():
        text = text.replace(name, value)
    folder.mkdir()
    path = folder / "optionsflow.py"
    path.write_text(text)
    step_type = PythonStepType()
    digests = []
    for function in ("scaled", "cached"):
        code = step_type.fingerprint({"file": str(path), "function": function})
        digests.append(code.digest)
    return digests[0], digests[1]


BASE = {"RETRIES": "1", "TIMEOUT": "'1h'", "NAME": "'cached'", "SIZE": "8"}


def test_changing_a_steps_options_keeps_its_fingerprint(tmp_path: Path) -> None:
    before = _fingerprints(tmp_path / "before", **BASE)
    options = {**BASE, "RETRIES": "3", "TIMEOUT": "'2h'", "NAME": "'cached_again'"}
    assert _fingerprints(tmp_path / "after", **options) == before


def test_another_decorators_arguments_still_count(tmp_path: Path) -> None:
    before = _fingerprints(tmp_path / "before", **BASE)
    after = _fingerprints(tmp_path / "after", **{**BASE, "SIZE": "16"})
    assert after[0] == before[0]
    assert after[1] != before[1]
