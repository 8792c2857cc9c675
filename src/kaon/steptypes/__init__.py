"""Step types: how a task's code runs (``python``, ``shell``, plugins).

Look one up with :func:`kaon.steptypes.registry.get_step_type`; validate a task's config with
:func:`kaon.steptypes.registry.check_step_type`. Importing this package is cheap: the names
below are loaded from :mod:`kaon.steptypes.registry` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kaon.steptypes.registry import check_step_type, get_step_type, step_type_names

__all__ = ["check_step_type", "get_step_type", "step_type_names"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kaon.steptypes import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'kaon.steptypes' has no attribute {name!r}")
