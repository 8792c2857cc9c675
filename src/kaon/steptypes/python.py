"""The ``python`` step type: call a Python function with the step's inputs as keyword arguments.

Configuration, one of::

    {"function": "my_package.steps:train"}            # import the module, take the attribute
    {"file": "/abs/path/flow.py", "function": "train"}  # load the file, take the attribute

A file is loaded once per process under the synthetic module name
``kaon_user_<first 12 hex digits of sha1(absolute path)>``; its sibling modules import as
modules of that folder only, so two versions of a workflow never share a module (see
:mod:`kaon.steptypes.codeload`). ``function`` may be a dotted qualified name
(``Model.fit``). When the resolved object is a Kaon step wrapper (it has ``__kaon_step__``
holding the original function, or exposes ``.fn``) the original function is called.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

from kaon.errors import Location, Problem
from kaon.model.text import exception_text
from kaon.steptypes.base import CodeFingerprint, StepType
from kaon.steptypes.codeload import display_module_names, load_file_module, user_module_name
from kaon.steptypes.context import StepContext
from kaon.steptypes.fingerprint import fingerprint_code

__all__ = ["PythonStepType", "load_file_module", "resolve_function", "user_module_name"]

_KNOWN_KEYS = frozenset({"function", "file"})

# (file or "", function) -> (its module, the object the module's name was bound to when the
# function was resolved, the function). A module's name bound to another object since (a
# notebook cell run again, ``importlib.reload`` after an edit) is resolved again.
_functions: dict[tuple[str, str], tuple[Any, Any, Callable[..., Any]]] = {}


def _unwrap(obj: Any) -> Any:
    """The original function behind a Kaon step wrapper, or ``obj`` itself."""
    inner = getattr(obj, "__kaon_step__", None)
    if callable(inner):
        return inner
    fn = getattr(obj, "fn", None)
    if callable(fn) and not isinstance(obj, ModuleType):
        return fn
    return obj


def _target(config: Mapping[str, Any]) -> tuple[str, str]:
    file = config.get("file") or ""
    function = str(config.get("function") or "")
    if file:
        return str(file), function
    module, _, qualname = function.partition(":")
    return "", f"{module}:{qualname}"


def resolve_function(config: Mapping[str, Any]) -> Callable[..., Any]:
    """The callable a ``python`` step config names.

    Resolved once per process and module binding: the function is looked up again when its
    module's top-level name now holds another object (a notebook cell run again, a module
    reloaded after an edit), so a step never runs, nor is fingerprinted as, code its module
    replaced.

    Raises ``ImportError``/``AttributeError`` (or whatever the module raises while loading)
    when it cannot be resolved, ``TypeError`` when the object is not callable.
    """
    try:
        return _resolve(config)
    except _FunctionNotFound as exc:  # an AttributeError to the step's code and its reader
        raise AttributeError(str(exc)) from None


def _resolve(config: Mapping[str, Any]) -> Callable[..., Any]:
    """:func:`resolve_function`, a missing function raised as :class:`_FunctionNotFound`."""
    key = _target(config)
    file, function = key
    module_name, _, qualname = function.partition(":")
    head, _, rest = (function if file else qualname).partition(".")
    cached = _functions.get(key)
    if cached is not None:
        module, bound, fn = cached
        if getattr(module, head, None) is bound:
            return fn
    else:
        module = load_file_module(file) if file else importlib.import_module(module_name)
    bound = getattr(module, head, _MISSING)
    if bound is _MISSING:  # named by its file, not the name Kaon imports it under
        raise _FunctionNotFound(
            _no_function(os.path.basename(file) if file else module_name, head, module)
        )
    obj: Any = bound
    for part in rest.split(".") if rest else ():
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise _FunctionNotFound(str(exc)) from None
    obj = _unwrap(obj)
    if not callable(obj):
        raise TypeError(f"{function} is a {type(obj).__name__}, not a function")
    _functions[key] = (module, bound, obj)
    return obj  # type: ignore[no-any-return]


_MISSING = object()


class _FunctionNotFound(AttributeError):
    """The module loaded but has no such function: a problem of ``function``, not ``file``."""


def _no_function(where: str, name: str, module: Any) -> str:
    """``mk.py has no function 'nothere'; did you mean 'there'?``"""
    defined = [
        key
        for key, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", None) == module.__name__
    ]
    close = difflib.get_close_matches(name, defined, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where} has no function {name!r}{hint}"


def _shape_problems(config: Mapping[str, Any], location: Location) -> list[Problem]:
    problems = [
        Problem(f"unknown key {key!r}; expected 'function' and optionally 'file'", location)
        for key in config
        if key not in _KNOWN_KEYS
    ]
    function = config.get("function")
    file = config.get("file")
    if not isinstance(function, str) or not function:
        problems.append(
            Problem("'function' is required (a string)", location.with_field("function"))
        )
    elif file is None and (":" not in function or not all(function.partition(":")[::2])):
        problems.append(
            Problem(
                f"'function' must look like 'module:qualname', got {function!r}",
                location.with_field("function"),
            )
        )
    if file is not None and (not isinstance(file, str) or not os.path.isabs(file)):
        problems.append(
            Problem(f"'file' must be an absolute path, got {file!r}", location.with_field("file"))
        )
    return problems


class PythonStepType(StepType):
    """Runs a Python function: ``fn(**inputs)``; its return value is the step's value."""

    name: ClassVar[str] = "python"
    fingerprint_runs_code: ClassVar[bool] = True  # imports the step's module

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check the config's shape, then try to resolve the function (importing its module).

        An import failure is reported as ``cannot import <target>: <error>``.
        """
        location = location.with_field("config")  # problems point at config.<key>
        problems = _shape_problems(config, location)
        if problems:
            return problems
        try:
            _resolve(config)
        except BaseException as exc:  # user module code may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            file, function = _target(config)
            target = f"{file}:{function}" if file else function
            missing = isinstance(exc, _FunctionNotFound)  # the module loaded: the name is wrong
            field = location.with_field("file" if file and not missing else "function")
            kind = "AttributeError" if missing else type(exc).__name__
            said = display_module_names(exception_text(exc))
            problems.append(Problem(f"cannot import {target}: {kind}: {said}", field))
        return problems

    def load_code(self, config: Mapping[str, Any]) -> None:
        """Resolve the function: its module is loaded before the step's inputs are."""
        resolve_function(config)

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Resolve the function and call it with ``inputs`` as keyword arguments."""
        return resolve_function(config)(**inputs)

    def fingerprint(self, config: Mapping[str, Any]) -> CodeFingerprint:
        """The function and everything it reads from the project (see
        :mod:`kaon.steptypes.fingerprint`). Where the function's file lives and the name its
        module is imported under are not part of it, so the Python and YAML front ends, a
        restarted process and a pushed bundle of the same code share cache entries."""
        function = resolve_function(config)
        code = fingerprint_code(function)
        qualname = getattr(inspect.unwrap(function), "__qualname__", "")
        identity = json.dumps({"python": qualname}, sort_keys=True)
        config_digest = "sha256:" + hashlib.sha256(identity.encode()).hexdigest()
        return dataclasses.replace(code, config=config_digest)
