"""The python step type: resolving functions by module or file, validation, unwrapping."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from kaon.errors import Location
from kaon.executors.base import EventSink
from kaon.model.events import ExecutorEvent
from kaon.steptypes.context import StepContext
from kaon.steptypes.python import (
    PythonStepType,
    load_file_module,
    resolve_function,
    user_module_name,
)

HERE = Location("flow.yaml", 7, "steps.train")


def make_context(sink: EventSink | None = None) -> StepContext:
    events: list[ExecutorEvent] = []
    return StepContext(("r", 1, 1), "train", "wf", {}, sink or events.append)


def write(path: Path, source: str) -> str:
    path.write_text(textwrap.dedent(source))
    return str(path)


class Wrapper:
    """Mimics kaon's step decorator."""

    def __init__(self, fn: object) -> None:
        self.__kaon_step__ = fn

    def __call__(self) -> str:
        return "the wrapper itself"


def _double(x: int) -> int:
    return 2 * x


wrapped = Wrapper(_double)


class HasFn:
    fn = staticmethod(_double)


class Nested:
    @staticmethod
    def triple(x: int) -> int:
        return 3 * x


def test_module_function_is_called_with_inputs_as_keywords() -> None:
    step = PythonStepType()
    result = step.run(make_context(), {"function": "json:dumps"}, {"obj": [1], "indent": None})
    assert result == "[1]"


def test_file_function_is_loaded_under_a_synthetic_module(tmp_path: Path) -> None:
    path = write(tmp_path / "flow.py", "def hello(name):\n    return 'hi ' + name\n")
    fn = resolve_function({"file": path, "function": "hello"})
    assert fn(name="x") == "hi x"
    name = user_module_name(path)
    assert name.startswith("kaon_user_") and len(name) == len("kaon_user_") + 12
    assert fn.__module__ == name and sys.modules[name].__file__ == path


def test_file_is_loaded_once_per_process(tmp_path: Path) -> None:
    path = write(
        tmp_path / "counted.py",
        """\
        import builtins
        builtins.kaon_test_loads = getattr(builtins, "kaon_test_loads", 0) + 1
        def f():
            return builtins.kaon_test_loads
        """,
    )
    first = resolve_function({"file": path, "function": "f"})()
    assert load_file_module(path) is load_file_module(path)
    assert resolve_function({"file": path, "function": "f"})() == first


def test_file_directory_is_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    write(tmp_path / "kaon_test_sibling_helper.py", "VALUE = 41\n")
    path = write(
        tmp_path / "uses_sibling.py",
        "import kaon_test_sibling_helper as h\ndef f():\n    return h.VALUE + 1\n",
    )
    assert resolve_function({"file": path, "function": "f"})() == 42


def test_failed_load_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    write(path, "def f(:\n")
    with pytest.raises(SyntaxError):
        load_file_module(str(path))
    write(path, "def f():\n    return 'fixed'\n")
    assert resolve_function({"file": str(path), "function": "f"})() == "fixed"


def test_a_module_already_loaded_from_the_file_is_reused() -> None:
    module = load_file_module(__file__)
    assert module is sys.modules[__name__]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (f"{__name__}:wrapped", 10),
        (f"{__name__}:HasFn", 10),
        (f"{__name__}:Nested.triple", 15),
    ],
)
def test_step_wrappers_are_unwrapped_and_qualnames_followed(function: str, expected: int) -> None:
    assert resolve_function({"function": function})(x=5) == expected


def test_valid_config_has_no_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.py", "def f():\n    pass\n")
    step = PythonStepType()
    assert step.validate({"function": "json:dumps"}, HERE) == []
    assert step.validate({"file": path, "function": "f"}, HERE) == []


@pytest.mark.parametrize(
    ("config", "field", "fragment"),
    [
        ({}, "steps.train.config.function", "'function' is required"),
        ({"function": 3}, "steps.train.config.function", "'function' is required"),
        ({"function": "json.dumps"}, "steps.train.config.function", "module:qualname"),
        ({"function": ":dumps"}, "steps.train.config.function", "module:qualname"),
        ({"function": "f", "file": "rel.py"}, "steps.train.config.file", "absolute path"),
        ({"function": "json:dumps", "retries": 2}, "steps.train.config", "unknown key 'retries'"),
        (
            {"function": "kaon_no_such_module:f"},
            "steps.train.config.function",
            "cannot import kaon_no_such_module:f: ModuleNotFoundError",
        ),
        ({"function": "json:no_such"}, "steps.train.config.function", "AttributeError"),
        ({"function": "json:__doc__"}, "steps.train.config.function", "not a function"),
    ],
)
def test_invalid_configs_are_reported_with_location(
    config: dict[str, object], field: str, fragment: str
) -> None:
    problems = PythonStepType().validate(config, HERE)
    assert len(problems) == 1
    assert fragment in problems[0].message
    assert problems[0].location == Location("flow.yaml", 7, field)


def test_a_file_that_raises_on_import_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "raising.py", "raise SystemExit('no')\n")
    problems = PythonStepType().validate({"file": path, "function": "f"}, HERE)
    assert [p.location.field for p in problems] == ["steps.train.config.file"]
    assert f"cannot import {path}:f: SystemExit: no" == problems[0].message


def test_a_function_redefined_in_its_module_is_resolved_again(tmp_path: Path) -> None:
    """A notebook cell run again, or ``importlib.reload`` after an edit, binds a new function
    to the module's name: a step must run (and be fingerprinted as) that one, not the one the
    process resolved first."""
    path = write(tmp_path / "edited.py", "def f():\n    return 'first'\n\nclass C:\n    pass\n")
    module = load_file_module(path)
    config = {"file": path, "function": "f"}
    assert resolve_function(config)() == "first"
    exec("def f():\n    return 'second'\n", module.__dict__)  # the cell, run again
    assert resolve_function(config)() == "second"
    exec("class C:\n    @staticmethod\n    def g():\n        return 'g'\n", module.__dict__)
    assert resolve_function({"file": path, "function": "C.g"})() == "g"
