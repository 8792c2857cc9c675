"""Kaon: orchestrate and schedule machine-learning pipelines.

The public API for writing workflows in Python::

    import kaon

    @kaon.step
    def prepare(users): ...

    @kaon.workflow
    def recsys(min_ratings: int = 20): ...

Importing ``kaon`` costs next to nothing: each public name is imported on first use (PEP 562),
so the ``kaon`` command starts without the DSL, the model or the loaders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaon._version import __version__

if TYPE_CHECKING:
    from kaon.client import RunHandle, start
    from kaon.dsl._refs import Ref, expr
    from kaon.dsl._triggers import cron, on_data, on_signal
    from kaon.dsl.durations import format_duration, parse_duration
    from kaon.dsl.loader import load_workflow, load_workflows
    from kaon.dsl.python import (
        Retry,
        Step,
        Workflow,
        foreach,
        loop,
        shell,
        step,
        subworkflow,
        task,
        wait_for_signal,
        when,
        workflow,
    )
    from kaon.errors import DefinitionError, KaonError
    from kaon.model.specs import Const, Expr, RetrySpec, WorkflowSpec
    from kaon.service.local import run
    from kaon.steptypes.context import RecordingContext, StepContext, test_context
    from kaon.steptypes.context import current_context as context

__all__ = [
    "Const",
    "DefinitionError",
    "Expr",
    "KaonError",
    "RecordingContext",
    "Ref",
    "Retry",
    "RetrySpec",
    "RunHandle",
    "Step",
    "StepContext",
    "Workflow",
    "WorkflowSpec",
    "__version__",
    "context",
    "cron",
    "expr",
    "foreach",
    "format_duration",
    "load_workflow",
    "load_workflows",
    "loop",
    "on_data",
    "on_signal",
    "parse_duration",
    "run",
    "shell",
    "start",
    "step",
    "subworkflow",
    "task",
    "test_context",
    "wait_for_signal",
    "when",
    "workflow",
]

# Where each public name lives (PEP 562): importing ``kaon`` costs nothing until a name is
# used, so the ``kaon`` command starts without the DSL, the model or cloudpickle.
_LAZY: dict[str, tuple[str, str]] = {
    **{
        name: ("kaon.dsl.python", name)
        for name in (
            "Retry",
            "Step",
            "Workflow",
            "foreach",
            "loop",
            "shell",
            "step",
            "subworkflow",
            "task",
            "wait_for_signal",
            "when",
            "workflow",
        )
    },
    **{name: ("kaon.model.specs", name) for name in ("Const", "Expr", "RetrySpec", "WorkflowSpec")},
    **{name: ("kaon.dsl._triggers", name) for name in ("cron", "on_data", "on_signal")},
    **{name: ("kaon.dsl.durations", name) for name in ("format_duration", "parse_duration")},
    **{
        name: ("kaon.steptypes.context", name)
        for name in ("RecordingContext", "StepContext", "test_context")
    },
    "context": ("kaon.steptypes.context", "current_context"),
    "Ref": ("kaon.dsl._refs", "Ref"),
    "expr": ("kaon.dsl._refs", "expr"),
    "DefinitionError": ("kaon.errors", "DefinitionError"),
    "KaonError": ("kaon.errors", "KaonError"),
    "load_workflow": ("kaon.dsl.loader", "load_workflow"),
    "load_workflows": ("kaon.dsl.loader", "load_workflows"),
    "run": ("kaon.service.local", "run"),
    "start": ("kaon.client", "start"),
    "RunHandle": ("kaon.client", "RunHandle"),
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first asked for (then cached)."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'kaon' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names too (they are imported lazily)."""
    return sorted(set(globals()) | set(__all__))
