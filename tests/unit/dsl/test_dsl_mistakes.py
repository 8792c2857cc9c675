"""Probe tests: newcomer mistakes in the Python DSL must be reported, located, never silently
accepted. Each test fails on /work/main HEAD and passes with the matching patch."""

from __future__ import annotations

import textwrap

import pytest

import kaon
from kaon.errors import DefinitionError
from kaon.model.expressions import compile_expression

HEADER = """\
import kaon

@kaon.step
def a(x: int = 1) -> int:
    return x

@kaon.step
def b(y) -> int:
    return y

"""


def write(tmp_path, body: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


def problems(target: str) -> list:
    with pytest.raises(DefinitionError) as info:
        kaon.load_workflow(target)
    return info.value.problems


# 01: a nested foreach whose item has the outer item's name silently reads the inner item


def test_nested_foreach_reusing_item_name_is_rejected(tmp_path):
    path = write(
        tmp_path,
        """
        @kaon.workflow
        def f():
            with kaon.foreach([1, 2], as_="x") as outer:
                with kaon.foreach([10, 20], as_="x") as inner:
                    b(outer.item * 100 + inner.item)
        """,
    )
    found = problems(path)
    assert any("'x'" in p.message and "enclosing" in p.message for p in found), found
    assert found[0].location.line == 15


# 02: two workflows named alike in one file: the first is run, the second silently ignored


def test_two_workflows_with_one_name_in_a_file_are_rejected(tmp_path):
    path = write(
        tmp_path,
        """
        @kaon.workflow(name="train")
        def w1():
            a(1)

        @kaon.workflow(name="train")
        def w2():
            a(2)
            a(3)
        """,
    )
    for target in (path, path + ":train"):
        found = problems(target)
        assert any("train" in p.message and "second" in p.message for p in found), found


# 03: kaon.when(x is None) / when(flag is True) is a Python bool fixed at definition time


@pytest.mark.parametrize(
    "body",
    [
        """
        @kaon.workflow
        def f(debug: bool = False):
            with kaon.when(debug is True):
                a(1)
        """,
        """
        @kaon.workflow
        def f():
            r = a()
            with kaon.when(r is not None):
                b(r)
        """,
        """
        @kaon.workflow
        def f():
            r = a()
            b.options(when=r is None)(r)
        """,
    ],
)
def test_when_given_a_python_bool_is_rejected(tmp_path, body):
    path = write(tmp_path, body)
    found = problems(path)
    assert any("Python bool" in p.message for p in found), found
    assert all(p.location.file == path for p in found)


# 04: ref / 2 is Python true division in the DSL, but becomes CEL integer division


def test_true_division_of_refs_divides_like_python(tmp_path):
    path = write(
        tmp_path,
        """
        @kaon.workflow
        def f(n: int = 5):
            b(n / 2)
        """,
    )
    spec = kaon.load_workflow(path)
    source = spec.graph.steps[0].inputs["y"].source
    assert compile_expression(source).evaluate({"params": {"n": 5}}) == 2.5
    assert compile_expression(source).evaluate({"params": {"n": -7}}) == -3.5


# 05: an error raised inside the standard library is placed at '<frozen posixpath>'


def test_error_raised_in_the_stdlib_is_located_at_the_users_line(tmp_path):
    path = write(
        tmp_path,
        """
        import os

        @kaon.workflow
        def f():
            r = a()
            b(os.path.join(r, "x"))
        """,
    )
    found = problems(path)
    assert found[0].location.file == path, found
    assert found[0].location.line == 17, found


# 06: async and generator functions are accepted as steps and fail only at run time


@pytest.mark.parametrize(
    "definition",
    [
        "async def c(x: int) -> int:\n    return x\n",
        "def c(x: int):\n    yield x\n",
        "async def c(x: int):\n    yield x\n",
    ],
)
def test_async_or_generator_step_is_a_definition_error(tmp_path, definition):
    path = write(
        tmp_path,
        "@kaon.step\n" + definition + "\n@kaon.workflow\ndef f():\n    c(1)\n",
    )
    found = problems(path)
    assert any("async" in p.message or "generator" in p.message for p in found), found


# 07: a method decorated with @kaon.step: 'missing self' or the argument silently bound to self


@pytest.mark.parametrize("call", ["M().m(1)", "M().m(x=1)"])
def test_method_step_is_reported_as_a_method(tmp_path, call):
    path = write(
        tmp_path,
        f"""
        class M:
            @kaon.step
            def m(self, x: int) -> int:
                return x

        @kaon.workflow
        def f():
            {call}
        """,
    )
    found = problems(path)
    assert any("method" in p.message for p in found), found


# 08: FILE:missing reports another workflow's problems instead of the missing name


def test_missing_workflow_name_is_reported_even_when_another_is_broken(tmp_path):
    path = write(
        tmp_path,
        """
        @kaon.workflow
        def good():
            a(1)

        @kaon.workflow
        def bad():
            a(zz=1)
        """,
    )
    found = problems(path + ":nothere")
    assert len(found) == 1
    assert "no workflow 'nothere'" in found[0].message
    assert "good" in found[0].message and "bad" in found[0].message


# 09: len(ref), ref.attr, int(ref), a, b = ref: Python's messages, no hint to the DSL's way
