"""Code fingerprints for memoization: everything a step's code reads from the project, as a hash.

The fingerprint of a Python function covers, transitively, everything of the *project* (the
files under the folder of the step's own file, or of its top-level package) that its code
reads by global name, directly (``helper()``, ``FACTOR``), through a project module
(``pipeline.helper()``, ``pipeline.FACTOR``) or through an ``import`` in its body (``from
helper import compute``, imported as the body imports it):

* functions: their source with their compiled code (the source alone is the file on disk,
  which may have been edited since the running code was loaded), their default values and
  the values their closures hold;
* classes: each attribute of the class body (methods by source, data by value), the default
  values of their methods, and their project base classes;
* ``functools.partial`` objects: their function and their arguments;
* module-level values that are plain data (``None``, numbers, strings, bytes, tuples, lists,
  dicts, sets of those, enum members, paths, frozen dataclasses of those, numpy arrays): a
  canonical encoding of the value; code held in such data (a dict of lambdas, a list of
  model classes, a partial in a dict) counts as it does when read by name.

The run facts the code reads from ``kaon.context()`` (``params``, ``item``, ``index``,
``iteration``: when some of the code reached calls it, each of those names that any of that
code uses, since the context may be handed to a helper that reads it) are listed as
``context_reads``; the engine puts their values in the cache key, as it does inputs.

Each of these is a *part*, named by its kind, the path of its file relative to the project
root and its qualified name (``constant pipeline.py:FACTOR``), never by the module's import
name: the same code loaded by the Python front end, by YAML, in another process or from a
pushed bundle has the same fingerprint. Anything else a step reads from the project (an
open file, a client object, an instance of a non-data class) cannot be fingerprinted: it is
recorded as *not covered* (``pipeline.py:LOG (Logger)``), which ``kaon explain`` reports;
pin such a step with ``cache_version``. Library code (the standard library, site-packages)
is not covered either: upgrading a library does not invalidate the cache.
"""

from __future__ import annotations

import ast
import dataclasses
import dis
import enum
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import pathlib
import re
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

from kaon.steptypes.base import CONTEXT_FACTS, CodeFingerprint

__all__ = ["CodeFingerprint", "code_fingerprint", "fingerprint_code", "is_plain_data"]

_LIBRARY_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    if p
)
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_MAX_DEPTH = 32


class _NotData(Exception):
    """The value is not plain data."""


def _encode(
    value: Any,
    depth: int = 0,
    classes: list[type] | None = None,
    leaf: Callable[[Any], str] | None = None,
) -> str:
    """A canonical text of a plain-data value; raises _NotData for anything else.

    ``classes`` collects the classes of the enum members and dataclass instances met, whose
    code (methods, an enum's values) the value's text does not hold: a walker follows those
    of the project as it follows any class the code reads. ``leaf`` gives the text of a
    value inside data that is not data itself (a function in a dict of transforms), or
    raises _NotData; a value that is not data at the top is never data."""
    if depth > _MAX_DEPTH:
        raise _NotData
    kind = type(value)
    if kind in _SCALARS:
        return f"{kind.__name__}:{value!r}"
    if isinstance(value, enum.Enum):
        if classes is not None:
            classes.append(kind)
        try:
            member = _encode(value.value, depth + 1, classes, leaf)
        except _NotData:
            member = f"object:{type(value.value).__qualname__}"
        return f"enum:{kind.__qualname__}.{value.name}={member}"
    if isinstance(value, pathlib.PurePath):
        return f"path:{value.as_posix()}"
    if kind in (tuple, list):
        return (
            f"{kind.__name__}("
            + ",".join(_encode(v, depth + 1, classes, leaf) for v in value)
            + ")"
        )
    if kind in (set, frozenset):
        return "set(" + ",".join(sorted(_encode(v, depth + 1, classes, leaf) for v in value)) + ")"
    if kind is dict:  # in its order: code iterating it (``list(FEATURES)``) sees that order
        pairs = [
            f"{_encode(k, depth + 1, classes, leaf)}={_encode(v, depth + 1, classes, leaf)}"
            for k, v in value.items()
        ]
        return "dict(" + ",".join(pairs) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise _NotData
        if classes is not None:
            classes.append(kind)
        fields = ",".join(
            f"{f.name}={_encode(getattr(value, f.name), depth + 1, classes, leaf)}"
            for f in dataclasses.fields(value)
        )
        return f"dataclass:{kind.__qualname__}({fields})"
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        if value.dtype.hasobject:  # its bytes are pointers: encode the elements themselves
            return (
                f"ndarray:object:{value.shape}:{_encode(value.tolist(), depth + 1, classes, leaf)}"
            )
        body = hashlib.sha256(value.tobytes()).hexdigest()
        # a structured dtype's ``str`` is its size only (``|V16``): its fields name the bytes
        dtype = value.dtype.descr if value.dtype.names else value.dtype.str
        return f"ndarray:{dtype}:{value.shape}:{body}"
    if kind.__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar
        return f"numpy:{value.dtype.str}:{value.item()!r}"
    if leaf is not None and depth > 0:
        return leaf(value)
    raise _NotData


def is_plain_data(value: Any) -> bool:
    """Whether the fingerprint covers ``value`` by value (see the module docstring)."""
    try:
        _encode(value)
    except _NotData:
        return False
    return True


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _code_text(code: types.CodeType) -> str:
    """Bytecode, names and constants of compiled code, without its file name."""
    consts = [
        _code_text(c) if isinstance(c, types.CodeType) else _const_text(c) for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{code.co_names}|{consts}"


def _const_text(const: Any) -> str:
    """A constant's ``repr``, except for a ``frozenset`` (a set literal, ``x in {"a",
    "b"}``) holding strings or bytes, whose ``repr`` follows the string hashes every process
    seeds anew: its elements' texts sorted instead, so every process has one text."""
    if not _hash_seeded(const):
        return repr(const)
    if isinstance(const, frozenset):
        return "frozenset({" + ", ".join(sorted(_const_text(c) for c in const)) + "})"
    if isinstance(const, tuple):
        return "(" + ", ".join(_const_text(c) for c in const) + ("," * (len(const) == 1)) + ")"
    return repr(const)


def _hash_seeded(const: Any) -> bool:
    """Whether the ``repr`` of ``const`` depends on the process's string hashes: a frozenset
    with an element whose hash does, or a tuple holding such a frozenset."""
    if isinstance(const, frozenset):
        return any(_seeded_hash(c) for c in const)
    return isinstance(const, tuple) and any(_hash_seeded(c) for c in const)


def _seeded_hash(value: Any) -> bool:
    """Whether the hash of ``value`` is seeded per process (a string, bytes, or a tuple or
    frozenset holding one)."""
    if isinstance(value, str | bytes):
        return True
    return isinstance(value, tuple | frozenset) and any(_seeded_hash(c) for c in value)


def _function_source(function: types.FunctionType) -> str:
    """The function's source and its compiled code: the source alone is read from the file
    on disk, which may have changed since the code now running was loaded (a notebook that
    edits a module between two runs), and the result of the old code would be stored under
    the new code's key."""
    compiled = _code_text(function.__code__)
    try:
        source = inspect.getsource(function)
    except (TypeError, OSError):
        return compiled
    return f"{_without_step_decorators(source, function)}\0{compiled}"


def _without_step_decorators(source: str, function: types.FunctionType) -> str:
    """``source`` without its ``@kaon.step(...)`` lines: a step's options (retries, timeout,
    resources, id) are not its code, and changing one must not be a cache miss. Any other
    decorator stays, as written (``@functools.lru_cache(maxsize=8)``, a library's)."""
    if "@" not in source:
        return source
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return source
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return source
    drop: set[int] = set()
    for decorator in node.decorator_list:
        if _is_step_decorator(decorator, function.__globals__):
            end = decorator.end_lineno or decorator.lineno
            drop.update(range(decorator.lineno - 1, end))
    if not drop:
        return source
    lines = source.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines) if number not in drop)


def _is_step_decorator(decorator: ast.expr, scope: dict[str, Any]) -> bool:
    """Whether ``decorator`` (``kaon.step``, ``kaon.step(...)``, ``step`` imported by any
    name) names Kaon's step decorator in ``scope``. Names only: nothing is evaluated."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    attributes: list[str] = []
    while isinstance(target, ast.Attribute):
        attributes.append(target.attr)
        target = target.value
    if not isinstance(target, ast.Name) or target.id not in scope:
        return False
    found: Any = scope[target.id]
    for attribute in reversed(attributes):
        if not isinstance(found, types.ModuleType):  # a module's attributes only
            return False
        found = vars(found).get(attribute)
    return (
        isinstance(found, types.FunctionType)
        and found.__module__ == "kaon.dsl.python"
        and found.__name__ == "step"
    )


def _names_used(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names_used(const)


def _imports(code: types.CodeType) -> Iterator[tuple[str, int]]:
    """``(module name, level)`` of each ``import`` statement in ``code`` and the code nested
    in it (a function's body imports what its globals do not show)."""
    consts: list[Any] = []
    for instruction in dis.get_instructions(code):
        if instruction.opname == "LOAD_CONST":
            consts.append(instruction.argval)
        elif instruction.opname == "IMPORT_NAME":
            level = consts[-2] if len(consts) >= 2 and isinstance(consts[-2], int) else 0
            yield str(instruction.argval), level
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _imports(const)


def _method(value: Any) -> Any:
    """A class attribute as the function it runs when it is one behind a wrapper: a static or
    class method's, a ``functools.cached_property``'s, or the function a ``functools``
    wrapper calls (``@functools.cache``); anything else as it is."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, functools.cached_property):
        value = value.func
    if callable(value) and not isinstance(value, type | types.FunctionType):
        return _wrapped_function(value) or value
    return value


def _class_functions(cls: type) -> Iterator[types.FunctionType]:
    for value in vars(cls).values():
        value = _method(value)
        if isinstance(value, property):
            yield from (f for f in (value.fget, value.fset, value.fdel) if f is not None)  # type: ignore[misc]
        elif isinstance(value, types.FunctionType):
            yield value


def _wrapped_function(obj: Any) -> types.FunctionType | None:
    """The function behind a wrapper (a Kaon step, a ``functools.wraps`` decorator, a
    partial), if any."""
    for attr in ("__kaon_step__", "__wrapped__", "fn", "func"):
        inner = getattr(obj, attr, None)
        if isinstance(inner, types.FunctionType):
            return inner
    return None


def _import_function(scope: dict[str, Any]) -> Any:
    """The ``__import__`` a function's body uses: its module's builtins'."""
    table = scope.get("__builtins__")
    found = table.get("__import__") if isinstance(table, dict) else None
    return found or getattr(table, "__import__", None) or __import__


def _beside(importer: Any, top: str) -> bool:
    """Whether ``top`` names a module or package beside a user file (its folder importer's)."""
    folder = getattr(importer, "folder", None)
    if not isinstance(folder, str) or not top.isidentifier():
        return False
    return os.path.isfile(os.path.join(folder, f"{top}.py")) or os.path.isfile(
        os.path.join(folder, top, "__init__.py")
    )


def _file_of(obj: Any) -> str | None:
    path: str | None = None
    if isinstance(obj, types.FunctionType):
        path = obj.__code__.co_filename
    elif isinstance(obj, types.ModuleType):
        path = getattr(obj, "__file__", None)
    elif isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        path = getattr(module, "__file__", None) if module is not None else None
        if path is None:
            path = next((f.__code__.co_filename for f in _class_functions(obj)), None)
    return os.path.realpath(path) if path and os.path.isabs(path) else None


_DiskNames = dict[str, "ast.expr | tuple[str, str]"]


def _binding_file(path: str, name: str) -> tuple[str, str]:
    """Where a global of the file at ``path`` is defined, as ``(file, name there)``: the
    sibling file it is imported from (``from helper import BONUS as EXTRA``: helper.py's
    ``BONUS``, which is what an edit changes), else the file itself."""
    bound = _disk_names(path).get(name)
    if isinstance(bound, tuple):
        sibling = _sibling_file(path, bound[0])
        if sibling is not None:
            return sibling, bound[1]
    return path, name


def _sibling_file(path: str, module: str) -> str | None:
    """The file of ``module`` beside the file at ``path`` (``from helper import X``), if any."""
    sibling = os.path.join(os.path.dirname(path), *module.split(".")) + ".py"
    return os.path.realpath(sibling) if os.path.isfile(sibling) else None


def _disk_names(path: str) -> _DiskNames:
    """What the file at ``path`` *now* binds at its top level: ``NAME = expr`` (the last
    one) or ``from sibling import NAME`` (``(module, name)``). Parsed once per content
    (its size and modification time)."""
    try:
        stat = os.stat(path)
    except OSError:
        return {}
    return _parsed_names(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)  # bounded: a long-lived server sees many edits
def _parsed_names(path: str, _mtime_ns: int, _size: int) -> _DiskNames:
    names: _DiskNames = {}
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return names
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            if isinstance(statement.target, ast.Name):
                names[statement.target.id] = statement.value
        elif isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.module:
            for alias in statement.names:
                names[alias.asname or alias.name] = (statement.module, alias.name)
    for name in _changed_after_binding(tree):
        names.pop(name, None)
    return names


def _changed_after_binding(tree: ast.Module) -> set[str]:
    """The names a module's top level changes besides binding them (``CFG["lr"] = 0.1``,
    ``NAMES.append(x)``, ``TOTAL += 1``, ``for X in ...``) or a function rebinds
    (``global X``): the value loaded is not the literal its assignment reads, though the
    file did not change."""
    changed = {
        name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names
    }
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        bound: list[ast.expr] = []  # the plain names the statement binds: not a change
        if isinstance(statement, ast.Assign):
            bound = [t for t in statement.targets if isinstance(t, ast.Name)]
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            bound = [statement.target]
        for node in ast.walk(statement):
            name = _changed_name(node)
            if name is not None and not any(node is target for target in bound):  # X = ...
                changed.add(name)
    return changed


def _changed_name(node: ast.AST) -> str | None:
    """The name ``node`` binds, deletes or changes in place, if any."""
    if isinstance(node, ast.Name):
        return node.id if isinstance(node.ctx, ast.Store | ast.Del) else None
    if isinstance(node, ast.Subscript | ast.Attribute) and isinstance(
        node.ctx, ast.Store | ast.Del
    ):
        return node.value.id if isinstance(node.value, ast.Name) else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # NAMES.append(x)
        return node.func.value.id if isinstance(node.func.value, ast.Name) else None
    return None


def _is_context_function(value: Any) -> bool:
    return (
        isinstance(value, types.FunctionType)
        and value.__module__ == "kaon.steptypes.context"
        and value.__name__ == "current_context"
    )


def _reads_context(code: types.CodeType, names: set[str], scope: dict[str, Any]) -> bool:
    """Whether code calls ``kaon.context()``: through the ``kaon`` module (imported at the
    top of its file or in its body) or the function imported by any name (``from kaon
    import context``). What it then reads of the context (``.params``, ``.item``...) is
    among ``names``, as an attribute's name is among the names code uses."""
    if any(_is_context_function(scope.get(name)) for name in names):
        return True
    if not names.intersection(("context", "current_context")):
        return False
    kaon_module = any(
        isinstance(scope.get(name), types.ModuleType)
        and scope[name].__name__ in ("kaon", "kaon.steptypes.context")
        for name in names
    )
    return kaon_module or ("kaon", 0) in set(_imports(code))


class _Walker:
    """Collects the parts of a fingerprint, starting from one function."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._digests: dict[str, set[str]] = {}
        self.not_covered: dict[str, str] = {}
        self._visited: set[int] = set()
        self._pending: list[Any] = []
        self._seen_members: set[tuple[int, str]] = set()
        self._keep: list[Any] = []  # objects whose id is in _visited stay alive
        self._texting: set[int] = set()  # functions whose text is being made
        # The run facts (``params``, ``item``...) the project code names anywhere, and
        # whether any of it calls ``kaon.context()``: the context it gets may be handed to
        # a helper (``helper.scaled(kaon.context(), x)`` reading ``ctx.params``), so every
        # fact named in the code reached counts, not only those the calling code names.
        self._facts_named: set[str] = set()
        self._calls_context = False

    @property
    def context_reads(self) -> tuple[str, ...]:
        """The run facts the code may read from ``kaon.context()`` (sorted)."""
        return tuple(sorted(self._facts_named)) if self._calls_context else ()

    def add_part(self, key: str, digest: str) -> None:
        """Record a part. Distinct objects may share a key (two lambdas of one module, two
        closures one factory made: one qualified name): each counts, none replaces another."""
        self._digests.setdefault(key, set()).add(digest)

    @property
    def parts(self) -> dict[str, str]:
        """Each part's digest, by key (sorted); a key several objects share has the digest
        of all of theirs, in an order that does not depend on the walk's."""
        return {
            key: next(iter(found)) if len(found) == 1 else _short("\0".join(sorted(found)))
            for key, found in sorted(self._digests.items())
        }

    def in_project(self, path: str | None) -> bool:
        if path is None or path.startswith(_LIBRARY_ROOTS) or "site-packages" in path:
            return False
        return path.startswith(self.root + os.sep)

    def name(self, path: str, qualname: str) -> str:
        return f"{os.path.relpath(path, self.root).replace(os.sep, '/')}:{qualname}"

    def run(self, function: types.FunctionType) -> None:
        self._pending.append(function)
        while self._pending:
            obj = self._pending.pop()
            if isinstance(obj, type):
                self._class(obj)
            else:
                self._function(obj)

    def _enqueue(self, obj: Any) -> None:
        if id(obj) not in self._visited:
            self._visited.add(id(obj))
            self._keep.append(obj)
            self._pending.append(obj)

    def _function(self, function: types.FunctionType) -> None:
        label = self._function_label(function)
        self.add_part(f"function {label}", _short(self._function_text(function, label)))
        self._globals(function)

    def _function_label(self, function: types.FunctionType) -> str:
        # the code's own name: a decorator's wrapper takes its function's ``__qualname__``
        return self.name(_file_of(function) or "", function.__code__.co_qualname)

    def _function_text(self, function: types.FunctionType, label: str) -> str:
        """The function's code, default values and closure values, as one text."""
        text = [_function_source(function)]
        for i, default in enumerate(function.__defaults__ or ()):
            text.append(self._value_text(f"{label}.<default {i}>", default))
        for key, default in sorted((function.__kwdefaults__ or {}).items()):
            text.append(self._value_text(f"{label}.<default {key}>", default))
        cells = zip(function.__code__.co_freevars, function.__closure__ or (), strict=False)
        for var, cell in cells:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            text.append(self._value_text(f"{label}.<closure {var}>", content))
        return "\0".join(text)

    def _globals(self, function: types.FunctionType) -> None:
        names = set(_names_used(function.__code__))
        scope = function.__globals__
        self._facts_named.update(names.intersection(CONTEXT_FACTS))
        if not self._calls_context and _reads_context(function.__code__, names, scope):
            self._calls_context = True
        home = _file_of(function) or ""
        for name in sorted(names):
            if name in scope:
                label = self.name(*_binding_file(home, name))
                self._value(label, scope[name], names, where=(home, name))
        for module_name, level in sorted(set(_imports(function.__code__))):
            label = self.name(home, f"<import {'.' * level}{module_name}>")
            module = self._imported(module_name, level, scope)
            if module is not None:
                self._value(label, module, names)

    def _imported(self, name: str, level: int, scope: dict[str, Any]) -> Any:
        """The module an ``import`` in a function's body names, when it is project code,
        imported as the body imports it (its module's ``__import__``: a sibling file of a
        user folder is that folder's, see :mod:`kaon.steptypes.codeload`); None for library
        code, which is not imported here. A project module whose loading raises is recorded
        as not covered."""
        importer = _import_function(scope)
        if not (level == 0 and _beside(importer, name.partition(".")[0])):
            try:  # not the folder's own: project code only if found under the project
                full = importlib.util.resolve_name("." * level + name, scope.get("__package__"))
                spec = sys.modules.get(full) or importlib.util.find_spec(full)
            except (ImportError, ValueError):
                return None  # the body's import fails at run time too: the step says so
            origin = getattr(spec, "__file__", None) or getattr(spec, "origin", None)
            if not self.in_project(os.path.realpath(origin) if origin else None):
                return None
        try:
            module = importer(name, scope, None, ("__name__",), level)
        except Exception as error:  # the module's own code raised while loading
            self.not_covered[f"<import {name}>"] = type(error).__name__
            return None
        return module if self.in_project(_file_of(module)) else None

    def _class(self, cls: type) -> None:
        path = _file_of(cls) or ""
        label = self.name(path, cls.__qualname__)
        text = []
        for base in cls.__bases__:
            if self.in_project(_file_of(base)):
                self._enqueue(base)
                text.append(f"base:{base.__qualname__}")
            else:
                text.append(f"base:{base.__module__}.{base.__qualname__}")
        for attr, value in sorted(vars(cls).items()):
            value = _method(value)
            if isinstance(value, types.FunctionType):
                text.append(f"{attr}:{_function_source(value)}")
            elif isinstance(value, property):
                funcs = [value.fget, value.fset, value.fdel]
                text.append(f"{attr}:" + "|".join(_function_source(f) for f in funcs if f))  # type: ignore[arg-type]
            elif not (attr.startswith("__") and attr.endswith("__")):  # dunders: Python's
                text.append(f"{attr}:{self._value_text(f'{label}.{attr}', value)}")
        for function in _class_functions(cls):
            for default in (
                *(function.__defaults__ or ()),
                *(function.__kwdefaults__ or {}).values(),
            ):  # a method's defaults are values, as a function's: ``alpha=ALPHA``
                text.append(self._value_text(f"{label}.{function.__name__}.<default>", default))
        self.add_part(f"class {label}", _short("\0".join(text)))
        for function in _class_functions(cls):
            if self.in_project(_file_of(function)):  # not an enum's or dataclass's own
                self._globals(function)

    def _encode_following(self, value: Any) -> str:
        """``_encode(value)``, following the project classes of the enum members and frozen
        dataclasses in it (their methods and values are code the step may run)."""
        classes: list[type] = []
        text = _encode(value, 0, classes, self._code_in_data)
        for cls in classes:
            if self.in_project(_file_of(cls)):
                self._enqueue(cls)
        return text

    def _code_in_data(self, value: Any) -> str:
        """The text of code held in data (``TRANSFORMS = {"log": lambda x: ..., "sq": ...}``,
        ``MODELS = [Ridge, make_forest]``, ``partial(fit, alpha=0.1)``): a project function
        by its code, its defaults and closure values, and followed (what it reads counts, as
        for a function the step reads by name); a project class by its name, and followed; a
        library function or class, or a builtin, by its qualified name; a ``partial`` by its
        function and arguments. Anything else raises _NotData: the value is not covered."""
        if isinstance(value, functools.partial):
            inner = [value.func, value.args, sorted(value.keywords.items())]
            return "partial:" + self._encode_following(inner)
        function = value if isinstance(value, types.FunctionType) else None
        if function is None and not isinstance(value, type) and callable(value):
            function = _wrapped_function(value)  # a Kaon step, functools.cache
        if function is not None and self.in_project(_file_of(function)):
            self._enqueue(function)
            label = self._function_label(function)
            if id(function) in self._texting:  # a closure holding a list of itself
                return f"function:{label}"
            self._texting.add(id(function))
            try:
                return f"function:{label}:{_short(self._function_text(function, label))}"
            finally:
                self._texting.discard(id(function))
        if isinstance(value, type) and self.in_project(_file_of(value)):
            self._enqueue(value)
            return f"class:{value.__qualname__}"
        library = isinstance(value, types.FunctionType | type | types.BuiltinFunctionType) or (
            type(value).__module__ == "numpy" and type(value).__name__ == "ufunc"
        )
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if library and isinstance(name, str):
            return f"lib:{getattr(value, '__module__', None)}.{name}"
        raise _NotData

    def _value_text(self, label: str, value: Any) -> str:
        """The text a default/closure/class attribute contributes to its owner's digest."""
        if isinstance(value, types.FunctionType | type):
            if self.in_project(_file_of(value)):
                self._enqueue(value)
                return f"ref:{value.__qualname__}"
            return f"lib:{getattr(value, '__module__', '')}.{value.__qualname__}"
        try:
            return self._encode_following(value)
        except _NotData:
            if isinstance(value, types.ModuleType):
                pass
            elif callable(value):
                inner = self._callable(label, value)
                if inner is not None:
                    return f"ref:{inner.__qualname__}"
            else:
                self.not_covered[label] = type(value).__name__
            return f"object:{type(value).__qualname__}"

    def _callable(self, label: str, value: Any) -> types.FunctionType | None:
        """A callable that is neither a function, a class nor data: the project function it
        wraps (a step wrapper, ``functools.cache``), followed and returned; an instance of
        a project class (a class-based decorator, a model with ``__call__``) has its class
        followed and, holding state the fingerprint cannot see, is reported as not covered.
        A builtin or library callable is neither."""
        inner = _wrapped_function(value)
        if inner is not None and self.in_project(_file_of(inner)):
            self._enqueue(inner)
            return inner
        if self.in_project(_file_of(type(value))):
            self._enqueue(type(value))
            self.not_covered[label] = type(value).__name__
        return None

    def _value(
        self, label: str, value: Any, names: set[str], where: tuple[str, str] | None = None
    ) -> None:
        """A global the code reads: follow project code, hash plain data, note the rest.

        ``where`` is the file whose top level binds the name, and the name: a plain-data
        value is checked against what that file binds now (see :meth:`_check_on_disk`)."""
        if isinstance(value, types.ModuleType):
            path = _file_of(value)
            if not self.in_project(path):
                return
            self._keep.append(value)
            members = vars(value)
            for attr in sorted(names):
                if attr in members and (id(value), attr) not in self._seen_members:
                    self._seen_members.add((id(value), attr))
                    where = (path or "", attr)
                    self._value(self.name(path or "", attr), members[attr], names, where=where)
            return
        if isinstance(value, types.FunctionType | type):
            if self.in_project(_file_of(value)):
                self._enqueue(value)
            return
        if isinstance(value, functools.partial):  # its arguments are values too
            text = [self._value_text(f"{label}.<function>", value.func)]
            text += [self._value_text(f"{label}.<arg>", arg) for arg in value.args]
            text += [
                f"{key}={self._value_text(f'{label}.<arg {key}>', arg)}"
                for key, arg in sorted(value.keywords.items())
            ]
            self.add_part(f"partial {label}", _short("\0".join(text)))
            return
        try:
            encoded = self._encode_following(value)
        except _NotData:
            if callable(value):  # a builtin, a library callable, a step wrapper
                self._callable(label, value)
                return
            self.not_covered[label] = type(value).__name__
            if self.in_project(_file_of(type(value))):
                self._enqueue(type(value))
            return
        self.add_part(f"constant {label}", _short(encoded))
        if where is not None:
            self._check_on_disk(where[0], where[1], encoded)

    def _check_on_disk(self, path: str, name: str, encoded: str, depth: int = 0) -> None:
        """A module edited on disk after this process loaded it (a notebook between two
        ``kaon.run`` calls) holds the old value, while a worker that loads the file anew
        runs with the new one: the key would be the old code's, the result the new code's.
        When the literal the file binds ``name`` to now is not the loaded value, the file's
        content joins the fingerprint (so no fresh process ever shares that key), and the
        file is reported as not covered."""
        if depth > 4 or not self.in_project(path):
            return
        bound = _disk_names(path).get(name)
        if isinstance(bound, tuple):  # from sibling import NAME: look in the sibling
            sibling = _sibling_file(path, bound[0])
            if sibling is not None:
                self._check_on_disk(sibling, bound[1], encoded, depth + 1)
            return
        if bound is None:
            return
        try:
            now = _encode(ast.literal_eval(bound))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, _NotData):
            return  # not a literal: the value is computed, as it is in every process
        if now == encoded:
            return
        file = self.name(path, "").rstrip(":")
        try:
            with open(path, "rb") as handle:
                content = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            content = "unreadable"
        self.add_part(f"changed-on-disk {file}", content[:16])
        self.not_covered[f"{file}:{name}"] = "file changed on disk since it was loaded"


def _project_root(function: types.FunctionType) -> str:
    """The folder of the function's file, or of its top-level package when it is imported
    from a package by its real name."""
    path = _file_of(function)
    if path is None:
        return ""
    root = os.path.dirname(path)
    module = sys.modules.get(function.__module__)
    if module is not None and getattr(module, "__file__", None) and "." in function.__module__:
        for _ in range(function.__module__.count(".")):
            if os.path.exists(os.path.join(root, "__init__.py")):
                root = os.path.dirname(root)
    return root


def _wrappers(function: Any, target: Any) -> Iterator[Any]:
    """The layers of ``function``'s ``__wrapped__`` chain around ``target``, outermost
    first: what a decorator returned, which runs before (and calls) the function itself."""
    layer = function
    for _ in range(100):  # inspect.unwrap's own bound is sys.getrecursionlimit()
        if layer is target or layer is None:
            return
        yield layer
        layer = getattr(layer, "__wrapped__", None)


def fingerprint_code(function: Callable[..., Any]) -> CodeFingerprint:
    """The fingerprint of a function and of everything it reads from the project."""
    target = inspect.unwrap(function)
    if not isinstance(target, types.FunctionType):
        return _fingerprint_callable(target)
    root = _project_root(target)
    if not root:  # no file: its compiled code is all there is to cover
        text = _code_text(target.__code__)
        return CodeFingerprint(digest=hashlib.sha256(text.encode()).hexdigest(), parts={})
    walker = _Walker(root)
    walker._visited.add(id(target))
    for layer in _wrappers(function, target):  # a project decorator's code runs too
        if isinstance(layer, types.FunctionType):
            if walker.in_project(_file_of(layer)):
                walker._enqueue(layer)
        elif walker.in_project(_file_of(type(layer))):
            walker._enqueue(type(layer))
    walker.run(target)
    parts = walker.parts
    digest = hashlib.sha256()
    for name, part in parts.items():
        digest.update(f"{name}\0{part}\0".encode())
    for name in sorted(walker.not_covered):
        digest.update(f"?{name}\0{walker.not_covered[name]}\0".encode())
    not_covered = tuple(f"{n} ({t})" for n, t in sorted(walker.not_covered.items()))
    return CodeFingerprint(
        digest=digest.hexdigest(),
        parts=parts,
        not_covered=not_covered,
        context_reads=walker.context_reads,
    )


def _fingerprint_callable(target: Any) -> CodeFingerprint:
    """A step that is a callable but not a function: a ``functools.partial`` (its function
    and its bound arguments), an instance of a class with ``__call__`` (that method and what
    it reads; the instance's state is not covered), else its ``repr`` without memory
    addresses (a builtin). Never an address, which would change the key in every process."""
    if isinstance(target, functools.partial):
        inner = fingerprint_code(target.func)
        try:
            bound = _encode((target.args, target.keywords))
            missing: tuple[str, ...] = ()
        except _NotData:
            bound = f"object:{len(target.args)}:{sorted(target.keywords)}"
            missing = ("partial arguments (not plain data)",)
        digest = hashlib.sha256(f"partial\0{inner.digest}\0{bound}".encode()).hexdigest()
        return CodeFingerprint(
            digest=digest,
            parts=inner.parts,
            not_covered=inner.not_covered + missing,
            context_reads=inner.context_reads,
        )
    call = inspect.getattr_static(type(target), "__call__", None)
    if isinstance(call, types.FunctionType):
        inner = fingerprint_code(call)
        state = f"instance of {type(target).__qualname__}"
        digest = hashlib.sha256(f"callable\0{inner.digest}\0{state}".encode()).hexdigest()
        return CodeFingerprint(
            digest=digest,
            parts=inner.parts,
            not_covered=(*inner.not_covered, f"{state} (state)"),
            context_reads=inner.context_reads,
        )
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(target))
    return CodeFingerprint(digest=hashlib.sha256(text.encode()).hexdigest(), parts={})


def code_fingerprint(function: Callable[..., Any]) -> str:
    """sha256 of a function and of everything it reads from the project (see the module)."""
    return fingerprint_code(function).digest
