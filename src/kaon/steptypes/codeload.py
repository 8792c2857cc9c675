"""Loading user code by file, each folder's modules in a namespace of their own.

A workflow file and the files beside it (a pushed bundle, or a local project folder) are
code of one version of one workflow. Two versions of a workflow, or two teams' workflows, may
each have a ``helper.py``; they must never meet in :data:`sys.modules`, in the server, its
engine or its warm workers. So:

* a user file is loaded once per process under a name derived from its absolute path,
  ``kaon_user_<first 12 hex digits of sha1(path)>`` (a pushed bundle lives in a folder named
  by the hash of its content, so that name is content-addressed for pushed code);
* its module gets a builtins table of its folder whose ``__import__`` resolves a top-level
  ``import helper`` (or ``from helper import f``) to the sibling file ``helper.py`` of *that*
  folder, loaded the same way; any other import is the ordinary one. Modules so loaded get
  the same table, so a chain of sibling imports stays inside the folder. Nothing is added to
  ``sys.path`` for a sibling module, and no bundle module is registered under its bare name.

A sub-package beside a local workflow file (``mypkg/__init__.py``) is imported the ordinary way:
its folder is put on ``sys.path`` the first time a module of the folder imports it (pushed
bundles are flat and never need this). ``importlib.import_module("helper")`` called by user
code is the ordinary import too: it does not see siblings.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import cloudpickle

_lock = threading.RLock()
_file_modules: dict[str, ModuleType] = {}
_folder_builtins: dict[str, dict[str, Any]] = {}
_real_import = builtins.__import__


def display_module_name(name: str) -> str:
    """The module name a person reads: a user file's module is named by its file
    (``pipeline``, not ``kaon_user_<hash>``); any other module keeps its name."""
    if name.startswith("kaon_user_"):
        file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(file, str):
            return os.path.splitext(os.path.basename(file))[0]
    return name


_SYNTHETIC_NAME = re.compile(r"\bkaon_user_[0-9a-f]{12}\b")


def display_module_names(text: str) -> str:
    """``text`` (an error's message or traceback) with every user file's synthetic module
    name replaced by :func:`display_module_name`: ``module 'helper' has no attribute 'f'``,
    not ``module 'kaon_user_9d7086e5f08e' ...``, which names no file a person knows."""
    if "kaon_user_" not in text:
        return text
    return _SYNTHETIC_NAME.sub(lambda found: display_module_name(found.group(0)), text)


def user_module_name(path: str) -> str:
    """The synthetic module name a user file at absolute ``path`` is loaded under."""
    return "kaon_user_" + hashlib.sha1(path.encode()).hexdigest()[:12]


class FolderImporter:
    """``__import__`` for the modules of one folder: bare names of sibling ``.py`` files are
    that folder's files, loaded with :func:`load_file_module`; the rest is the usual import."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._siblings: dict[str, str | None] = {}
        self._packages_on_path = False

    def __call__(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> ModuleType:
        if level == 0 and name and "." not in name:
            path = self.sibling(name)
            if path is not None:
                return load_file_module(path)
            if not self._packages_on_path and self._is_package(name):
                self._put_folder_on_path()
        elif level == 0 and not self._packages_on_path and self._is_package(name.split(".")[0]):
            self._put_folder_on_path()
        return _real_import(name, globals, locals, fromlist, level)  # type: ignore[no-any-return]

    def sibling(self, name: str) -> str | None:
        """The path of the folder's module file ``<name>.py``, or None."""
        try:
            return self._siblings[name]
        except KeyError:
            pass
        path = os.path.join(self.folder, name + ".py")
        found = path if name.isidentifier() and os.path.isfile(path) else None
        self._siblings[name] = found
        return found

    def _is_package(self, name: str) -> bool:
        return name.isidentifier() and os.path.isfile(
            os.path.join(self.folder, name, "__init__.py")
        )

    def _put_folder_on_path(self) -> None:
        with _lock:
            self._packages_on_path = True
            if self.folder not in sys.path:
                sys.path.insert(0, self.folder)


def folder_builtins(folder: str) -> dict[str, Any]:
    """The builtins table given to modules loaded from ``folder`` (one per folder)."""
    table = _folder_builtins.get(folder)
    if table is None:
        with _lock:
            table = _folder_builtins.get(folder)
            if table is None:
                table = dict(builtins.__dict__)
                table["__import__"] = FolderImporter(folder)
                _folder_builtins[folder] = table
    return table


def _already_loaded(path: str) -> ModuleType | None:
    """A module of this process loaded from ``path`` (``__main__`` included), if any.

    Reusing it keeps a script's module-level code from running a second time when its own
    workflow is validated or run inline.
    """
    real = os.path.realpath(path)
    base = os.path.basename(real)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or os.path.basename(file) != base:
            continue
        if os.path.realpath(file) == real:
            return module
    return None


def load_file_module(path: str) -> ModuleType:
    """Load the Python file at absolute ``path`` once per process and return its module.

    A module already imported from that file (the running script, say) is used as is. The
    module's sibling imports resolve inside its folder (see the module docstring).

    Raises whatever executing the file raises (``FileNotFoundError``, ``SyntaxError``, ...);
    a failed load is not cached, so a fixed file loads on the next attempt.
    """
    path = os.path.abspath(path)
    module = _file_modules.get(path)
    if module is not None:
        return module
    with _lock:
        module = _file_modules.get(path)
        if module is not None:
            return module
        module = _already_loaded(path)
        if module is not None:
            _file_modules[path] = module
            return module
        module = _execute(path)
        _file_modules[path] = module
        return module


def forget_file_module(path: str) -> None:
    """Forget the module loaded from ``path``: the next :func:`load_file_module` executes the
    file again (a module whose decorators reported problems is not kept, as a failed load
    is not)."""
    path = os.path.abspath(path)
    with _lock:
        if _file_modules.pop(path, None) is not None:
            sys.modules.pop(user_module_name(path), None)


def _execute(path: str) -> ModuleType:
    name = user_module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = folder_builtins(os.path.dirname(path))
    sys.modules[name] = module  # before exec: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    # Its name exists only in processes that loaded the file, so objects of classes it
    # defines are pickled by value: any worker can load them without importing it.
    cloudpickle.register_pickle_by_value(module)
    return module
