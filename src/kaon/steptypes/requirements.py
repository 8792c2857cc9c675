"""The Python packages a step type needs, and the hint that installs them.

A step type whose packages come with an extra (``kaon[notebook]``, ``kaon[spark]``, ...)
declares them through :meth:`~kaon.steptypes.base.StepType.requirements`; ``kaon validate``
(and every load of a definition) reports a missing one as a problem with the exact command that
installs it, instead of a ``ModuleNotFoundError`` when the step first runs.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    """A module a step needs and the extra of Kaon that brings it."""

    module: str  # the top-level module imported (``papermill``)
    extra: str  # the extra that installs it (``notebook``)

    @property
    def hint(self) -> str:
        """The command that installs it: ``pip install 'kaon[notebook]'``."""
        return f"pip install 'kaon[{self.extra}]'"


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported here (without importing it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_message(what: str, requirement: Requirement) -> str:
    """``"<what> needs papermill, which is not installed: pip install 'kaon[notebook]'"``."""
    return f"{what} needs {requirement.module}, which is not installed: {requirement.hint}"
