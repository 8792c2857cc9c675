"""Code held in data (a dict of transforms, a list of model classes, a partial in a dict) was
not covered: the whole value was reported as not covered and never hashed, so editing a
lambda of ``TRANSFORMS = {"log": lambda x: ..., "sq": lambda x: ...}`` reused the stale
result. Functions, classes and partials inside data now count as they do read by name."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.steptypes.fingerprint import fingerprint_code
from kaon.steptypes.python import load_file_module

_counter = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="kaon_fp_data_"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


def _step(helper: str, body: str = "return apply(name, x)") -> Any:
    folder = _ROOT / str(next(_counter))
    folder.mkdir()
    (folder / "helper.py").write_text(textwrap.dedent(helper))
    (folder / "pipeline.py").write_text(f"from helper import *\n\ndef step(name, x):\n    {body}\n")
    return load_file_module(str(folder / "pipeline.py")).step


TRANSFORMS = """
    import functools, fractions

    OFFSET = {offset}

    def shifted(x, k):
        return x + k + OFFSET

    TRANSFORMS = {{
        "log": lambda x: x * {log},
        "sq": lambda x: x ** {sq},
        "shift": shifted,
        "part": functools.partial(shifted, k={k}),
        "lib": {lib},
    }}

    def apply(name, x):
        return TRANSFORMS[name](x)
"""

BASE = {"offset": 1, "log": 2, "sq": 2, "k": 3, "lib": "fractions.Fraction"}


def _fp(**change: Any) -> Any:
    return fingerprint_code(_step(TRANSFORMS.format(**{**BASE, **change})))


def test_a_dict_of_functions_is_covered() -> None:
    base = _fp()
    assert base.not_covered == ()
    assert _fp().digest == base.digest, "the same code: the same key"
    for change in ({"log": 3}, {"sq": 3}, {"offset": 5}, {"k": 4}, {"lib": "abs"}):
        assert _fp(**change).digest != base.digest, f"{change} must be a miss"


def test_swapping_two_lambdas_between_keys_is_a_miss() -> None:
    assert _fp(log=3, sq=2).digest != _fp(log=2, sq=3).digest


def test_an_instance_in_data_is_still_not_covered() -> None:
    helper = """
        class Scaler:
            def __call__(self, x):
                return x * 2

        STEPS = [Scaler()]

        def apply(name, x):
            return STEPS[0](x)
    """
    assert fingerprint_code(_step(helper)).not_covered == ("helper.py:STEPS (list)",)
