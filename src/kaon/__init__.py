"""Kaon: orchestrate and schedule machine-learning pipelines.

The public API for writing workflows in Python::

    import kaon

    @kaon.step
    def prepare(users): ...

    @kaon.workflow
    def recsys(min_ratings: int = 20): ...

Importing ``kaon`` stays light: no data libraries, no database drivers. The YAML and file
loaders (:func:`load_workflow`, :func:`load_workflows`) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaon._version import __version__
from kaon.dsl._refs import Ref, expr
from kaon.dsl._triggers import cron, on_data, on_signal
from kaon.dsl.durations import format_duration, parse_duration
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
from kaon.steptypes.context import RecordingContext, StepContext, test_context
from kaon.steptypes.context import current_context as context

if TYPE_CHECKING:
    from kaon.client import RunHandle, start
    from kaon.dsl.loader import load_workflow, load_workflows
    from kaon.service.local import run

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

_LAZY = {
    "load_workflow": "kaon.dsl.loader",
    "load_workflows": "kaon.dsl.loader",
    "run": "kaon.service.local",
    "start": "kaon.client",
    "RunHandle": "kaon.client",
}


def __getattr__(name: str) -> Any:
    """Import the loaders (YAML, pydantic) only when first asked for."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kaon' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
