"""Code the step runs through a wrapper counts: a project decorator around the step's own
function, a method behind ``functools.cache``, a callable instance of a project class. Each
of these ran with an edit the fingerprint did not see (a stale cache hit, silently). And a
module-level value built at import (``CFG = {}`` then ``CFG["lr"] = 0.1``) is not "changed on
disk" when nothing changed."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.steptypes.fingerprint import CodeFingerprint, fingerprint_code
from kaon.steptypes.python import PythonStepType

_counter = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="kaon_fpw_"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


def _fp(files: dict[str, str], function: str = "step") -> CodeFingerprint:
    """The fingerprint of ``pipeline.py:function`` loaded from a fresh folder (a fresh
    module name: as a fresh process sees it), as the ``python`` step type computes it."""
    folder = _ROOT / str(next(_counter))
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    config = {"file": str(folder / "pipeline.py"), "function": function}
    found = PythonStepType().fingerprint(config)
    assert isinstance(found, CodeFingerprint)
    return found


_DECO = """
    import functools

    def scaled(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            return f(*args, **kwargs) * 2
        return wrapper
"""
_DECORATED_STEP = """
    import kaon
    from deco import scaled

    @kaon.step(cache=True)
    @scaled
    def step(x: int) -> int:
        return x
"""


def test_a_project_decorator_around_the_step_counts() -> None:
    base = _fp({"pipeline.py": _DECORATED_STEP, "deco.py": _DECO})
    assert _fp({"pipeline.py": _DECORATED_STEP, "deco.py": _DECO}).digest == base.digest
    edited = _fp({"pipeline.py": _DECORATED_STEP, "deco.py": _DECO.replace("* 2", "* 3")})
    assert edited.digest != base.digest
    assert any("deco.py:scaled" in part for part in edited.parts)
    # the step's own body still counts
    body = _DECORATED_STEP.replace("return x", "return x + 1")
    assert _fp({"pipeline.py": body, "deco.py": _DECO}).digest != base.digest


def test_a_library_decorator_around_the_step_keeps_the_plain_fingerprint() -> None:
    plain = """
        def step(x):
            return x
    """
    cached = """
        import functools

        @functools.lru_cache
        def step(x):
            return x
    """
    # a library's wrapper is not project code: the step's function is all there is
    assert list(_fp({"pipeline.py": cached}).parts) == list(_fp({"pipeline.py": plain}).parts)


@pytest.mark.parametrize(
    "decorator",
    ["functools.cache", "functools.lru_cache(maxsize=None)", "functools.cached_property"],
)
def test_a_method_behind_a_functools_wrapper_counts(decorator: str) -> None:
    source = f"""
        import functools

        class Model:
            @{decorator}
            def score(self):
                return 1

        def step():
            model = Model()
            return model.score if isinstance(model.score, int) else model.score()
    """
    base = _fp({"pipeline.py": source})
    assert _fp({"pipeline.py": source.replace("return 1", "return 2")}).digest != base.digest
    assert base.not_covered == ()


def test_a_static_method_behind_a_cache_counts() -> None:
    source = """
        import functools

        class Model:
            @staticmethod
            @functools.cache
            def score():
                return 1

        def step():
            return Model.score()
    """
    base = _fp({"pipeline.py": source})
    assert _fp({"pipeline.py": source.replace("return 1", "return 2")}).digest != base.digest


def test_a_callable_instance_of_a_project_class_counts_or_is_reported() -> None:
    source = """
        class Twice:
            def __init__(self, f):
                self.f = f

            def __call__(self, *args):
                return self.f(*args) * 2

        @Twice
        def helper():
            return 1

        def step():
            return helper()
    """
    base = _fp({"pipeline.py": source})
    # the class's code counts
    assert _fp({"pipeline.py": source.replace("* 2", "* 3")}).digest != base.digest
    # what the instance holds is not data: `kaon explain` says so
    assert base.not_covered == ("pipeline.py:helper (Twice)",)


def test_a_value_completed_at_import_is_not_changed_on_disk() -> None:
    source = """
        CFG = {}
        CFG["lr"] = 0.1
        NAMES = []
        NAMES.append("a")
        TOTAL = 0
        TOTAL += 5

        def step():
            return CFG["lr"], NAMES, TOTAL
    """
    base = _fp({"pipeline.py": source})
    assert base.not_covered == ()
    assert not any(part.startswith("changed-on-disk") for part in base.parts)
    # a comment elsewhere in the file is no miss; the value is still covered
    assert (
        _fp({"pipeline.py": source.replace("def step", "# a note\n        def step")}).digest
        == base.digest
    )
    assert _fp({"pipeline.py": source.replace("0.1", "0.2")}).digest != base.digest


def test_a_structured_array_counts_its_field_names() -> None:
    source = """
        import numpy as np

        A = np.zeros(2, dtype=[("a", "f8"), ("b", "f8")])
        A["a"] = 1

        def step():
            return float(A["a"].sum())
    """
    swapped = source.replace('[("a", "f8"), ("b", "f8")]', '[("b", "f8"), ("a", "f8")]')
    swapped = swapped.replace('A["a"] = 1', 'A["b"] = 1')
    assert _fp({"pipeline.py": source}).digest != _fp({"pipeline.py": swapped}).digest


def test_fingerprint_code_of_a_wrapped_function_follows_the_wrapper() -> None:
    base: Any = _fp({"pipeline.py": _DECORATED_STEP, "deco.py": _DECO})
    # fingerprint_code itself (the Spark step type's path) agrees with the step type
    folder = _ROOT / str(next(_counter))
    folder.mkdir()
    (folder / "pipeline.py").write_text(textwrap.dedent(_DECORATED_STEP))
    (folder / "deco.py").write_text(textwrap.dedent(_DECO))
    from kaon.steptypes.python import resolve_function

    function = resolve_function({"file": str(folder / "pipeline.py"), "function": "step"})
    assert fingerprint_code(function).digest == base.digest


_PARTIAL_AND_CALLABLE = """
    import functools

    def add(a, x=1):
        return a + x

    step_partial = functools.partial(add, 2)

    class Scaler:
        def __call__(self, x=1):
            return x * 3

    step_object = Scaler()
"""


@pytest.mark.parametrize("function", ["step_partial", "step_object"])
def test_a_step_that_is_a_partial_or_a_callable_object_has_a_stable_key(function: str) -> None:
    # Its key was the sha256 of its repr, memory address included: a miss in every process.
    base = _fp({"pipeline.py": _PARTIAL_AND_CALLABLE}, function)
    assert _fp({"pipeline.py": _PARTIAL_AND_CALLABLE}, function).digest == base.digest
    edited = _PARTIAL_AND_CALLABLE.replace("a + x", "a - x").replace("x * 3", "x * 4")
    assert _fp({"pipeline.py": edited}, function).digest != base.digest


def test_a_partials_bound_arguments_count() -> None:
    other = _PARTIAL_AND_CALLABLE.replace("partial(add, 2)", "partial(add, 3)")
    base = _fp({"pipeline.py": _PARTIAL_AND_CALLABLE}, "step_partial")
    assert _fp({"pipeline.py": other}, "step_partial").digest != base.digest
    assert base.not_covered == ()


def test_a_callable_objects_state_is_listed_as_not_covered() -> None:
    found = _fp({"pipeline.py": _PARTIAL_AND_CALLABLE}, "step_object")
    assert found.not_covered == ("instance of Scaler (state)",)
