"""Triggers in both front ends: ``kaon.cron`` / ``kaon.on_signal`` / ``kaon.on_data`` and
the YAML ``triggers:`` list.

Python::

    @kaon.workflow(triggers=[
        kaon.cron("0 6 * * *", timezone="Europe/Paris", catchup="latest", jitter="30s",
                  params={"day": "${{ slot }}"}),
        kaon.on_signal("data_ready", match="signal.region == 'eu'",
                       params={"path": "${{ signal.path }}"}),
        kaon.on_data("s3://bucket/{date:%Y-%m-%d}/_SUCCESS", poll="1m"),
    ])

YAML::

    triggers:
      - cron: "0 6 * * *"
        timezone: Europe/Paris
        catchup: latest
        jitter: 30s
      - signal: data_ready
        match: signal.region == 'eu'
        params: {path: "${{ signal.path }}"}
      - data: "s3://bucket/{date:%Y-%m-%d}/_SUCCESS"
        poll: 1m

Parameter values are constants, ``${{ }}`` templates, or :class:`~kaon.model.specs.Expr`.
The YAML entries are read by :mod:`kaon.dsl._yaml_triggers` (this module stays free of
pydantic so that ``import kaon`` stays light).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaon.dsl._builder import condition_source, user_location
from kaon.dsl._refs import Ref
from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError, ExpressionError, Location, Problem
from kaon.model.specs import Const, Expr, InputSpec
from kaon.model.triggers import (
    CatchUp,
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    TriggerSpec,
)

TRIGGER_KINDS = ("cron", "signal", "data")


def cron(
    expression: str,
    *,
    timezone: str = "UTC",
    catchup: str = "none",
    catchup_window: float | str | None = None,
    jitter: float | str = 0,
    params: Mapping[str, Any] | None = None,
) -> CronTriggerSpec:
    """Start a run at each slot of the cron ``expression`` in ``timezone``.

    ``catchup`` is ``none``, ``latest`` or ``all`` (slots missed while Kaon was down;
    ``catchup_window`` bounds how far back), ``jitter`` a duration; ``params`` may use
    ``${{ slot }}`` (the scheduled time, ISO 8601). Raises :class:`DefinitionError` at the
    caller's line for a bad duration or catch-up policy; the rest is checked with the
    workflow.
    """
    where = user_location()
    problems: list[Problem] = []
    policy = _catchup(catchup, where, problems)
    window = _duration(catchup_window, where.with_field("catchup_window_s"), problems)
    delay = _duration(jitter, where.with_field("jitter_s"), problems) or 0.0
    values = _params(params, where, problems)
    _raise(problems)
    return CronTriggerSpec(
        cron=expression,
        timezone=timezone,
        catchup=policy,
        catchup_window_s=window,
        jitter_s=delay,
        params=values,
        location=where,
    )


def on_signal(
    signal: str,
    *,
    match: str | Expr | None = None,
    params: Mapping[str, Any] | None = None,
    dedupe: str | Expr | None = None,
) -> SignalTriggerSpec:
    """Start a run when a signal called ``signal`` arrives and ``match`` holds.

    ``match``, ``dedupe`` and ``params`` see ``signal`` (the signal's parameters); by
    default the signal's parameters that name workflow parameters are passed, and each
    signal starts at most one run. Raises :class:`DefinitionError` at the caller's line.
    """
    where = user_location()
    problems: list[Problem] = []
    values = _params(params, where, problems)
    match_source = None if match is None else source_of(match, where.with_field("match"), problems)
    dedupe_source = (
        None if dedupe is None else source_of(dedupe, where.with_field("dedupe"), problems)
    )
    _raise(problems)
    return SignalTriggerSpec(
        signal=signal, match=match_source, dedupe=dedupe_source, params=values, location=where
    )


def on_data(
    path: str,
    *,
    poll: float | str = 60,
    timezone: str = "UTC",
    lookback_days: int = 1,
    params: Mapping[str, Any] | None = None,
) -> DataTriggerSpec:
    """Start a run once for each new path matching the fsspec URL template ``path``
    (``{date}`` / ``{date:%Y/%m/%d}``), checked every ``poll``; ``params`` see ``path`` and
    ``date``. Raises :class:`DefinitionError` at the caller's line."""
    where = user_location()
    problems: list[Problem] = []
    every = _duration(poll, where.with_field("poll_s"), problems)
    values = _params(params, where, problems)
    _raise(problems)
    return DataTriggerSpec(
        path=path,
        poll_s=every if every is not None else 60.0,
        timezone=timezone,
        lookback_days=lookback_days,
        params=values,
        location=where,
    )


def check_triggers_option(
    value: Any, location: Location
) -> tuple[tuple[TriggerSpec, ...], list[Problem]]:
    """The ``triggers=`` option of ``@kaon.workflow``: a list of trigger specs."""
    if value is None:
        return (), []
    items = list(value) if isinstance(value, list | tuple) else [value]
    bad = [t for t in items if not isinstance(t, TriggerSpec)]
    if bad:
        message = (
            f"triggers takes kaon.cron(...), kaon.on_signal(...) or kaon.on_data(...), "
            f"got {bad[0]!r:.80}"
        )
        return (), [Problem(message, location.with_field("triggers"))]
    return tuple(items), []


# -- helpers -----------------------------------------------------------------------------


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise DefinitionError(problems)


def _catchup(value: Any, where: Location, problems: list[Problem]) -> CatchUp:
    try:
        return CatchUp(value)
    except ValueError:
        problems.append(
            Problem(
                f"catchup must be one of none, latest, all; got {value!r}",
                where.with_field("catchup"),
            )
        )
        return CatchUp.NONE


def _duration(value: Any, where: Location, problems: list[Problem]) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, where)
    except DefinitionError as error:
        problems.extend(error.problems)
        return None


def source_of(value: Any, where: Location, problems: list[Problem]) -> str | None:
    """The CEL source of a condition-like value (recording a problem when it is none)."""
    return condition_source(value, where, problems)


def _params(
    params: Mapping[str, Any] | None, where: Location, problems: list[Problem]
) -> dict[str, InputSpec]:
    values: dict[str, InputSpec] = {}
    for name, value in (params or {}).items():
        at = where.with_field(f"params.{name}")
        values[str(name)] = param_value(value, at, problems)
    return values


def param_value(value: Any, where: Location, problems: list[Problem]) -> InputSpec:
    """A trigger parameter value: Expr/Const/Ref as is, a ``${{ }}`` string as a template,
    any other value as a constant."""
    from kaon.model.expressions import parse_template

    if isinstance(value, Expr | Const):
        return value
    if isinstance(value, Ref):
        return Expr(value.source)
    if isinstance(value, str) and "${{" in value:
        try:
            return parse_template(value, where)
        except ExpressionError as error:
            problems.extend(error.problems)
            return Const(None)
    return Const(value)
