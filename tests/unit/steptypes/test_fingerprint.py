"""The code fingerprint covers everything a step reads from the project, and nothing that
depends on module names: constants, helpers, classes, sibling modules; not-covered values
are reported; a property test checks that every edit changing the result is a miss."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.steptypes.fingerprint import code_fingerprint, fingerprint_code, is_plain_data
from kaon.steptypes.python import PythonStepType, load_file_module

_counter = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="kaon_fp_"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


def _load(files: dict[str, str], function: str = "step") -> Any:
    """Write ``files`` into a fresh folder and load ``pipeline.py``'s function from it."""
    folder = _ROOT / str(next(_counter))
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return getattr(load_file_module(str(folder / "pipeline.py")), function)


_BASE = """
    import helper

    FACTOR = 2
    NAMES = ("a", "b")

    def scale(x):
        return x * FACTOR

    class Model:
        offset = 1

        def apply(self, x):
            return x + self.offset

    def unrelated():
        return 99

    def step():
        return Model().apply(scale(3)) + helper.BONUS + len(NAMES)
"""
_HELPER = "BONUS = 5\n"


def _fp(pipeline: str = _BASE, helper: str = _HELPER) -> Any:
    return fingerprint_code(_load({"pipeline.py": pipeline, "helper.py": helper}))


def test_a_constant_a_helper_is_read_changes_the_fingerprint() -> None:
    base = _fp()
    assert _fp(_BASE.replace("FACTOR = 2", "FACTOR = 10")).digest != base.digest
    assert _fp(helper="BONUS = 6\n").digest != base.digest
    assert _fp(_BASE.replace("offset = 1", "offset = 2")).digest != base.digest
    assert _fp(_BASE.replace('("a", "b")', '("a",)')).digest != base.digest


def test_an_unrelated_edit_and_another_folder_or_module_name_keep_it() -> None:
    base = _fp()
    # A fresh folder is another absolute path and another module name: same fingerprint.
    assert _fp().digest == base.digest
    assert _fp(_BASE.replace("return 99", "return 100")).digest == base.digest
    assert "constant pipeline.py:FACTOR" in base.parts
    assert "constant helper.py:BONUS" in base.parts
    assert "class pipeline.py:Model" in base.parts
    assert not any("kaon_user" in part for part in base.parts)


def test_a_constant_imported_from_a_sibling_is_named_by_the_sibling_file() -> None:
    # ``from helper import BONUS``: an edit of helper.py is what changed, and `kaon explain`
    # names it so, not "constant BONUS in pipeline.py".
    source = _BASE.replace("import helper", "from helper import BONUS as EXTRA").replace(
        "helper.BONUS", "EXTRA"
    )
    base = _fp(source)
    assert "constant helper.py:BONUS" in base.parts
    assert not any(part.endswith(":EXTRA") for part in base.parts)
    assert _fp(source, helper="BONUS = 6\n").digest != base.digest


def test_python_step_type_config_ignores_where_the_file_lives() -> None:
    step_type = PythonStepType()
    prints = []
    for _ in range(2):
        fn = _load({"pipeline.py": _BASE, "helper.py": _HELPER})
        file = fn.__code__.co_filename
        prints.append(step_type.fingerprint({"file": file, "function": "step"}))
    assert prints[0].digest == prints[1].digest
    assert prints[0].config == prints[1].config


def test_values_it_cannot_fingerprint_are_reported() -> None:
    source = _BASE.replace(
        "def step():\n        return",
        "LOG = open(__file__)\n\n    def step():\n        LOG.seek(0)\n        return",
    )
    found = _fp(source)
    assert found.not_covered == ("pipeline.py:LOG (TextIOWrapper)",)


def test_plain_data() -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int

    @dataclasses.dataclass
    class Mutable:
        a: int

    assert is_plain_data({"a": [1, 2.5, (None, b"x")], "s": {1, 2}})
    assert is_plain_data(Frozen(1))
    assert not is_plain_data(Mutable(1))
    assert not is_plain_data(object())


# -- the property: every edit that changes the result is a miss; an unrelated edit a hit -----

_PROGRAM = """
    import helper

    {consts}

    {helpers}

    class Model:
        def apply(self, x):
            return x + C{method_const} * {method_add}

    def unrelated():
        return C{unrelated_const} + {unrelated_add}

    def step():
        return {calls} + Model().apply(1) + helper.K * {k_mult}
"""


@st.composite
def _programs(draw: st.DrawFn) -> dict[str, Any]:
    n = 3
    return {
        "consts": draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
        "helpers": draw(
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 3)), min_size=n, max_size=n)
        ),
        "called": draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3)),
        "method_const": draw(st.integers(0, n - 1)),
        "method_add": draw(st.integers(0, 3)),
        "unrelated_const": draw(st.integers(0, n - 1)),
        "unrelated_add": draw(st.integers(0, 3)),
        "k": draw(st.integers(0, 3)),
        "k_mult": draw(st.integers(0, 2)),
    }


def _render(p: dict[str, Any]) -> dict[str, str]:
    consts = "\n    ".join(f"C{i} = {v}" for i, v in enumerate(p["consts"]))
    helpers = "\n\n    ".join(
        f"def h{i}(x):\n        return x * C{c} + {a}" for i, (c, a) in enumerate(p["helpers"])
    )
    calls = " + ".join(f"h{i}({j + 1})" for j, i in enumerate(p["called"]))
    text = _PROGRAM.format(
        consts=consts,
        helpers=helpers,
        calls=calls,
        method_const=p["method_const"],
        method_add=p["method_add"],
        unrelated_const=p["unrelated_const"],
        unrelated_add=p["unrelated_add"],
        k_mult=p["k_mult"],
    )
    return {"pipeline.py": text, "helper.py": f"K = {p['k']}\n"}


_EDITS = st.one_of(
    st.tuples(st.just("const"), st.integers(0, 2), st.integers(0, 5)),
    st.tuples(st.just("helper"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("method_add"), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("unrelated_add"), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("k"), st.just(0), st.integers(0, 3)),
)


def _apply(p: dict[str, Any], edit: tuple[str, int, int]) -> dict[str, Any]:
    kind, index, value = edit
    q = {k: list(v) if isinstance(v, list) else v for k, v in p.items()}
    if kind == "const":
        q["consts"][index] = value
    elif kind == "helper":
        q["helpers"][index] = (q["helpers"][index][0], value)
    else:
        q[kind] = value
    return q


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(), _EDITS)
def test_every_edit_that_changes_the_result_is_a_miss(
    program: dict[str, Any], edit: tuple[str, int, int]
) -> None:
    before = _load(_render(program))
    after = _load(_render(_apply(program, edit)))
    changed_result = before() != after()
    same_print = code_fingerprint(before) == code_fingerprint(after)
    if changed_result:
        assert not same_print, f"stale hit after {edit}"
    if edit[0] == "unrelated_add":
        assert same_print, "an edit of a function the step never reads must keep the cache"


def test_a_step_file_counts_by_content_not_by_where_it_lives(tmp_path: Path) -> None:
    from kaon.steptypes.registry import get_step_type

    sql = get_step_type("sql")
    prints = []
    for folder, query in (("a", "select 1"), ("b", "select 1"), ("c", "select 2")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "q.sql").write_text(query)
        config = {"file": "q.sql", "base_dir": str(tmp_path / folder), "result": "rows"}
        found = sql.fingerprint(config)
        assert not isinstance(found, str)
        prints.append(found)
    assert prints[0] == prints[1]
    assert prints[0].digest != prints[2].digest and prints[0].config != prints[2].config
    assert list(prints[0].parts) == ["file q.sql"]


def test_what_a_steps_body_imports_method_defaults_and_partials_count() -> None:
    """Found wrong: each of these was left out of the key, so a changed value reused a
    stale cached result (``kaon explain``: same cache key)."""
    body = """
    import functools
    import numpy as np

    def local():
        from helper import compute
        return compute(3)

    def module_local():
        import helper
        return helper.compute(3)

    def method_default():
        from helper import Model
        return Model().fit(3)

    def partial():
        from helper import SCALE
        return SCALE(3)

    OBJ = np.array(["a", "b"], dtype=object)

    def objects():
        return list(OBJ)
    """
    helper = """
    import functools

    FACTOR = 2
    ALPHA = 10

    def compute(x):
        return x * FACTOR

    class Model:
        def fit(self, x, alpha=ALPHA):
            return x + alpha

    def scale(x, factor):
        return x * factor

    SCALE = functools.partial(scale, factor=3)
    """

    def digest(function: str, edit: tuple[str, str] = ("", "")) -> str:
        fn = _load({"pipeline.py": body, "helper.py": helper.replace(*edit)}, function)
        return fingerprint_code(fn).digest

    for function, edit in (
        ("local", ("FACTOR = 2", "FACTOR = 5")),
        ("module_local", ("FACTOR = 2", "FACTOR = 5")),
        ("method_default", ("ALPHA = 10", "ALPHA = 100")),
        ("partial", ("factor=3)", "factor=7)")),
    ):
        assert digest(function) == digest(function), function  # stable across loads
        assert digest(function, edit) != digest(function), function
    assert digest("objects") == digest("objects")  # an object array: its elements, not pointers
    assert digest("local", ("ALPHA = 10", "ALPHA = 11")) == digest("local")  # not read


def test_the_key_is_of_the_code_that_runs_not_of_the_file_since_edited() -> None:
    """A module edited on disk after it was loaded (a notebook between two ``kaon.run``):
    the code that runs is the old one, so its key must not be the new file's."""
    fn = _load({"pipeline.py": "def step():\n    return 1\n", "helper.py": ""})
    Path(fn.__code__.co_filename).write_text("def step():\n    return 2\n")
    fresh = _load({"pipeline.py": "def step():\n    return 2\n", "helper.py": ""})
    assert fingerprint_code(fn).digest != fingerprint_code(fresh).digest
