"""Two distinct functions of one qualified name (two lambdas of one module, two closures a
factory made) were one part of the fingerprint, the last one walked replacing the other:
editing the other one was a stale cache hit."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.steptypes.fingerprint import code_fingerprint, fingerprint_code
from kaon.steptypes.python import load_file_module

_counter = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="kaon_fp_same_"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


def _step(helper: str) -> Any:
    folder = _ROOT / str(next(_counter))
    folder.mkdir()
    (folder / "helper.py").write_text(textwrap.dedent(helper))
    (folder / "pipeline.py").write_text(
        "from helper import scale, shift\n\ndef step(x):\n    return shift(scale(x))\n"
    )
    return load_file_module(str(folder / "pipeline.py")).step


LAMBDAS = """
    scale = lambda x: x * {a}
    shift = lambda x: x + {b}
"""

CLOSURES = """
    def make(factor):
        def apply(x):
            return x * factor
        return apply

    scale = make({a})
    shift = make({b})
"""


@pytest.mark.parametrize("helper", [LAMBDAS, CLOSURES], ids=["lambdas", "closures"])
def test_each_function_of_a_shared_name_is_covered(helper: str) -> None:
    base = code_fingerprint(_step(helper.format(a=2, b=3)))
    assert code_fingerprint(_step(helper.format(a=2, b=3))) == base, "same code: same key"
    assert code_fingerprint(_step(helper.format(a=5, b=3))) != base, "scale edited"
    assert code_fingerprint(_step(helper.format(a=2, b=7))) != base, "shift edited"


def test_a_function_alone_under_its_name_keeps_its_part() -> None:
    parts = fingerprint_code(_step(LAMBDAS.format(a=2, b=3))).parts
    alone = fingerprint_code(_step("scale = lambda x: x * 2\nshift = abs\n")).parts
    assert len(parts["function helper.py:<lambda>"]) == 16
    assert parts["function helper.py:<lambda>"] != alone["function helper.py:<lambda>"]
