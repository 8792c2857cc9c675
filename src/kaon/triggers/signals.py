"""Matching signals to signal triggers: conditions, parameters, de-duplication keys.

A signal trigger sees the signal's parameters as ``signal`` in its ``match``, ``params``
and ``dedupe`` expressions. The de-duplication key decides how many runs signals start: a
(trigger, key) pair fires at most once (the trigger store enforces it), so by default each
signal starts at most one run per trigger, and a ``dedupe`` expression such as
``signal.date`` makes every signal of the same date start one run between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaon.errors import ExpressionError, Location
from kaon.model.expressions import cel_string, compile_expression, truthy
from kaon.model.specs import Const, Expr, InputSpec, WorkflowSpec
from kaon.model.triggers import SignalTriggerSpec
from kaon.store.base import SignalRecord


@dataclass(frozen=True, slots=True)
class SignalMatch:
    """A signal that fires a trigger: the run's parameters and the de-duplication key."""

    params: dict[str, Any]
    dedupe_key: str


def evaluate(value: InputSpec, variables: Mapping[str, Any], where: Location) -> Any:
    """The value of a trigger parameter (a constant, or an expression over ``variables``).

    Raises :class:`ExpressionError` naming the expression when it fails.
    """
    if isinstance(value, Const):
        return value.value
    assert isinstance(value, Expr)
    compiled = compile_expression(value.source, where, variables=frozenset(variables))
    return compiled.evaluate(variables)


def trigger_params(
    params: Mapping[str, InputSpec], variables: Mapping[str, Any], where: Location
) -> dict[str, Any]:
    """Every parameter of a trigger evaluated against ``variables``.

    Raises :class:`ExpressionError` for the first expression that fails.
    """
    return {
        name: evaluate(value, variables, where.with_field(f"params.{name}"))
        for name, value in params.items()
    }


def match_signal(
    trigger: SignalTriggerSpec, spec: WorkflowSpec, signal: SignalRecord
) -> SignalMatch | None:
    """The run a signal starts through ``trigger``, or None when it does not match.

    Raises :class:`ExpressionError` when an expression fails on this signal (a missing
    key, say); the caller records it and skips the signal.
    """
    if signal.name != trigger.signal:
        return None
    variables = {"signal": dict(signal.params)}
    where = trigger.location
    if trigger.match is not None:
        compiled = compile_expression(
            trigger.match, where.with_field("match"), variables=["signal"]
        )
        if not truthy(compiled.evaluate(variables), trigger.match, where.with_field("match")):
            return None
    if trigger.params:
        params = trigger_params(trigger.params, variables, where)
    else:
        declared = {p.name for p in spec.params}
        params = {k: v for k, v in signal.params.items() if k in declared}
    return SignalMatch(params, dedupe_key(trigger, signal))


def dedupe_key(trigger: SignalTriggerSpec, signal: SignalRecord) -> str:
    """The de-duplication key of ``signal`` for ``trigger``: its ``dedupe`` expression's
    value, else the key the sender gave, else the signal's id."""
    if trigger.dedupe is not None:
        where = trigger.location.with_field("dedupe")
        compiled = compile_expression(trigger.dedupe, where, variables=["signal"])
        return "key:" + cel_string(compiled.evaluate({"signal": dict(signal.params)}))
    if signal.dedupe_key:
        return "sender:" + signal.dedupe_key
    if signal.id is None:
        raise ExpressionError(f"signal {signal.name!r} has no id (it was never stored)")
    return f"signal:{signal.id}"
