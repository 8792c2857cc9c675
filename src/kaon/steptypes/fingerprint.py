"""Code fingerprints for memoization: what a step's code is, as a hash.

The fingerprint of a Python function covers its own source and, transitively, the source of
every function and class of the *project* it refers to by name: functions and classes defined
in files under the folder of the step's own file (directly, ``helper()``, or through a module,
``pipeline.helper()``). Library code (the standard library, site-packages) is not covered:
upgrading a library does not invalidate the cache; set the step's ``cache_version`` when it
should. Objects whose source cannot be read fall back to their compiled bytecode.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sysconfig
import types
from collections.abc import Callable, Iterator
from typing import Any

_LIBRARY_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    if p
)


def _file_of(obj: Any) -> str | None:
    try:
        path = inspect.getsourcefile(obj)
    except (TypeError, OSError):
        return None
    return os.path.realpath(path) if path else None


def _in_project(obj: Any, root: str) -> bool:
    path = _file_of(obj)
    if path is None or path.startswith(_LIBRARY_ROOTS) or "site-packages" in path:
        return False
    return path.startswith(root + os.sep)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (TypeError, OSError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() if code is not None else repr(obj)


def _names_used(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names_used(const)


def _referenced(obj: Any) -> Iterator[Any]:
    """Functions, classes and modules an object's code refers to by global name."""
    functions: list[Callable[..., Any]] = []
    if isinstance(obj, type):
        functions = [v for v in vars(obj).values() if isinstance(v, types.FunctionType)]
    elif isinstance(obj, types.FunctionType):
        functions = [obj]
    for function in functions:
        names = set(_names_used(function.__code__))
        scope = function.__globals__
        for name in names:
            value = scope.get(name)
            if isinstance(value, types.ModuleType):
                for attr in names:
                    member = getattr(value, attr, None)
                    if isinstance(member, types.FunctionType | type):
                        yield member
            elif isinstance(value, types.FunctionType | type):
                yield value


def code_fingerprint(function: Callable[..., Any]) -> str:
    """sha256 of a function's source and of the project code it calls (transitively)."""
    target = inspect.unwrap(function)
    path = _file_of(target)
    root = os.path.dirname(path) if path else ""
    seen: dict[str, str] = {}
    todo: list[Any] = [target]
    while todo:
        obj = todo.pop()
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
        if name in seen:
            continue
        seen[name] = _source(obj)
        if root:
            todo.extend(o for o in _referenced(obj) if _in_project(o, root))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(seen[name].encode())
        digest.update(b"\0")
    return digest.hexdigest()
