"""What one expression evaluation may cost (:class:`ExpressionBudget`), in a module of its own.

The settings and :mod:`kaon.model.expressions` hold a budget from start-up; the cost model
that checks expressions against it (:mod:`kaon.model.expression_cost`, with the CEL syntax
tree it walks) is imported only when an expression is analysed, so a workflow without
expressions never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ExpressionBudget:
    """What one evaluation may cost: estimated time (milliseconds) and the largest value it
    may build (bytes). Settable with ``KAON_EXPRESSION_TIME_MS`` and
    ``KAON_EXPRESSION_MAX_BYTES`` (see :mod:`kaon.service.settings`)."""

    time_ms: float = 100.0
    max_bytes: int = 16 * 1024 * 1024

    @property
    def time_ns(self) -> float:
        """The time budget in nanoseconds."""
        return self.time_ms * 1_000_000


DEFAULT_BUDGET: Final = ExpressionBudget()
