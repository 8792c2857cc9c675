"""The CEL interpreter, loaded without the ``cel`` package's command-line front end.

The ``common-expression-language`` package's ``__init__`` imports its REPL (typer, rich,
prompt_toolkit, pygments, ``importlib.metadata``): about three quarters of a second of start-up
that an orchestrator never uses. The interpreter itself is one Rust extension module,
``cel.cel``; :func:`load` imports just that module (registered under its own name, so a later
``import cel`` reuses it) and falls back to the package when the layout is not the expected one.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

_NAME = "cel.cel"


def loaded() -> ModuleType | None:
    """The ``cel.cel`` extension module if it is loaded already, else None (nothing loaded)."""
    return sys.modules.get(_NAME)


def load() -> ModuleType:
    """The ``cel.cel`` extension module (compile, Context, OptionalValue, ...)."""
    loaded = sys.modules.get(_NAME)
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("cel")  # finds the package without running it
    locations = package.submodule_search_locations if package is not None else None
    if not locations:
        return importlib.import_module(_NAME)
    finder = importlib.machinery.FileFinder(
        next(iter(locations)),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    spec = finder.find_spec(_NAME)
    if spec is None or spec.loader is None:
        return importlib.import_module(_NAME)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return module
