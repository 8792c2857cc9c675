"""The YAML ``triggers:`` list: one pydantic model per entry, turned into trigger specs.

See :mod:`kaon.dsl._triggers` for the forms; every problem is reported with its field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from kaon.dsl._triggers import TRIGGER_KINDS, source_of
from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError, Location, Problem
from kaon.model.specs import InputSpec
from kaon.model.triggers import (
    CatchUp,
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    TriggerSpec,
    timezone_problem,
)


def _duration_field(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DefinitionError as exc:
        raise ValueError(exc.problems[0].message) from None


_Duration = Annotated[Any, BeforeValidator(_duration_field)]


def _timezone_field(value: Any) -> Any:
    if isinstance(value, str) and (problem := timezone_problem(value)) is not None:
        raise ValueError(problem)  # with the entry's other fields' problems, not after them
    return value


_TimeZone = Annotated[StrictStr | None, BeforeValidator(_timezone_field)]


class TriggerModel(BaseModel):
    """One entry of ``triggers:``: exactly one of ``cron``, ``signal``, ``data``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: StrictStr | None = None
    signal: StrictStr | None = None
    data: StrictStr | None = None
    timezone: _TimeZone = None
    catchup: CatchUp | None = None
    catchup_window: _Duration = None
    jitter: _Duration = None
    match: StrictStr | None = None
    dedupe: StrictStr | None = None
    poll: _Duration = None
    lookback_days: StrictInt | None = Field(None, ge=0)
    params: dict[str, Any] = {}


_APPLIES: dict[str, tuple[str, ...]] = {
    "timezone": ("cron", "data"),
    "catchup": ("cron",),
    "catchup_window": ("cron",),
    "jitter": ("cron",),
    "match": ("signal",),
    "dedupe": ("signal",),
    "poll": ("data",),
    "lookback_days": ("data",),
}


def yaml_trigger(
    model: TriggerModel, where: Location, problems: list[Problem], params: dict[str, InputSpec]
) -> TriggerSpec | None:
    """The trigger spec of a validated YAML entry (``params`` already converted), or None
    after recording its problems (no kind, several kinds, fields of another kind)."""
    kinds = [k for k in TRIGGER_KINDS if getattr(model, k) is not None]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none"
        problems.append(
            Problem(f"a trigger needs exactly one of cron, signal, data ({found})", where)
        )
        return None
    kind = kinds[0]
    for name, owners in _APPLIES.items():
        if getattr(model, name) is not None and kind not in owners:
            problems.append(
                Problem(f"{name!r} does not apply to a {kind} trigger", where.with_field(name))
            )
    if kind == "cron":
        return CronTriggerSpec(
            cron=str(model.cron),
            timezone=model.timezone or "UTC",
            catchup=model.catchup or CatchUp.NONE,
            catchup_window_s=model.catchup_window,
            jitter_s=model.jitter or 0.0,
            params=params,
            location=where,
        )
    if kind == "signal":
        match = (
            None
            if model.match is None
            else source_of(model.match, where.with_field("match"), problems)
        )
        dedupe = (
            None
            if model.dedupe is None
            else source_of(model.dedupe, where.with_field("dedupe"), problems)
        )
        return SignalTriggerSpec(
            signal=str(model.signal), match=match, dedupe=dedupe, params=params, location=where
        )
    return DataTriggerSpec(
        path=str(model.data),
        poll_s=model.poll if model.poll is not None else 60.0,
        timezone=model.timezone or "UTC",
        lookback_days=model.lookback_days if model.lookback_days is not None else 1,
        params=params,
        location=where,
    )
