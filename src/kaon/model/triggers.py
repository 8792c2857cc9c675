"""Trigger specs: what starts runs of a workflow besides a person (cron, signals, data).

Pure data like the rest of :mod:`kaon.model`; the services that fire them live in
:mod:`kaon.triggers`. A workflow lists its triggers in ``WorkflowSpec.triggers``.

* :class:`CronTriggerSpec`: a cron expression in a time zone, with a catch-up policy after
  downtime and a deterministic jitter. Its ``params`` are evaluated with ``slot`` (the
  scheduled time, ISO 8601 with offset) bound.
* :class:`SignalTriggerSpec`: starts a run when a signal called ``signal`` arrives and
  ``match`` holds; ``params`` and ``dedupe`` are evaluated with ``signal`` (the signal's
  parameters) bound. A signal starts at most one run per trigger (per de-duplication key).
* :class:`DataTriggerSpec`: starts a run when a templated fsspec path appears (once per
  path). ``params`` see ``path`` (the path found) and ``date`` (its date, ISO).

:func:`trigger_to_dict` / :func:`trigger_from_dict` are the codec's encoding of a trigger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NoReturn

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.specs import (
    NOWHERE,
    Const,
    Expr,
    InputSpec,
    duration_problem,
    signal_name_problem,
)


class CatchUp(StrEnum):
    """What a cron trigger does with the slots it missed while Kaon was down."""

    NONE = "none"  # skip missed slots; fire only a slot that is due now
    LATEST = "latest"  # fire the most recent missed slot only
    ALL = "all"  # fire every missed slot (within catchup_window_s when set)


CRON_VARIABLES: Final = frozenset({"slot"})
SIGNAL_VARIABLES: Final = frozenset({"signal"})
DATA_VARIABLES: Final = frozenset({"path", "date"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    """Fields every trigger shares. Never instantiated directly.

    ``params`` maps workflow parameter names to constants or expressions; what the
    expressions may read depends on the trigger kind (``variables``).
    """

    params: Mapping[str, InputSpec] = field(default_factory=dict)
    location: Location = NOWHERE
    kind: str = "trigger"

    @property
    def variables(self) -> frozenset[str]:
        """Root variables the trigger's expressions may read."""
        return frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class CronTriggerSpec(TriggerSpec):
    """Fire at each slot of ``cron`` (five fields, or six with seconds last) in ``timezone``.

    ``jitter_s`` delays each slot by a deterministic amount in ``[0, jitter_s)``; the
    catch-up policy and ``catchup_window_s`` (seconds back from now; ``None``: no limit)
    decide which slots missed during downtime still fire.
    """

    cron: str
    timezone: str = "UTC"
    catchup: CatchUp = CatchUp.NONE
    catchup_window_s: float | None = None
    jitter_s: float = 0.0
    kind: str = "cron"

    @property
    def variables(self) -> frozenset[str]:
        """``slot``."""
        return CRON_VARIABLES


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalTriggerSpec(TriggerSpec):
    """Fire when a signal called ``signal`` arrives and ``match`` (CEL, optional) holds.

    ``dedupe`` (CEL) computes the de-duplication key of a signal; by default each signal
    is its own key (its id). ``params`` empty means: pass the signal's parameters that
    name declared workflow parameters.
    """

    signal: str
    match: str | None = None
    dedupe: str | None = None
    kind: str = "signal"

    @property
    def variables(self) -> frozenset[str]:
        """``signal``."""
        return SIGNAL_VARIABLES


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTriggerSpec(TriggerSpec):
    """Fire once for each new path matching ``path``, polled every ``poll_s`` seconds.

    ``path`` is an fsspec URL template: ``{date}`` is the date (``YYYY-MM-DD``) and
    ``{date:FORMAT}`` formats it with strftime; ``*`` globs. The dates tried are today
    and the ``lookback_days`` before it, in ``timezone``.
    """

    path: str
    poll_s: float = 60.0
    timezone: str = "UTC"
    lookback_days: int = 1
    kind: str = "data"

    @property
    def variables(self) -> frozenset[str]:
        """``path`` and ``date``."""
        return DATA_VARIABLES


AnyTrigger = CronTriggerSpec | SignalTriggerSpec | DataTriggerSpec


def trigger_id(workflow: str, trigger: TriggerSpec) -> str:
    """A stable identity for a workflow's trigger: ``<workflow>:<kind>:<digest>``.

    The digest covers what the trigger does (not its location), so a trigger keeps its
    state (last slot, consumed signals) across versions that do not change it.
    """
    data = trigger_to_dict(trigger, meta=False)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{workflow}:{trigger.kind}:{digest}"


def describe(trigger: TriggerSpec) -> str:
    """A one-line human description (``cron 0 6 * * * Europe/Paris``)."""
    if isinstance(trigger, CronTriggerSpec):
        return f"cron {trigger.cron} {trigger.timezone}"
    if isinstance(trigger, SignalTriggerSpec):
        return f"signal {trigger.signal}" + (f" if {trigger.match}" if trigger.match else "")
    if isinstance(trigger, DataTriggerSpec):
        return f"data {trigger.path}"
    return trigger.kind


# -- encoding ----------------------------------------------------------------------------


def trigger_to_dict(trigger: TriggerSpec, *, meta: bool = True) -> dict[str, Any]:
    """Encode ``trigger`` as a JSON-able dict (``meta``: include its location).

    Raises :class:`DefinitionError` for a trigger kind this module does not know or a
    parameter constant that is not JSON.
    """
    data: dict[str, Any] = {"kind": trigger.kind, "params": _params_to_dict(trigger)}
    if isinstance(trigger, CronTriggerSpec):
        data.update(
            cron=trigger.cron,
            timezone=trigger.timezone,
            catchup=trigger.catchup.value,
            catchup_window_s=_opt_float(trigger.catchup_window_s),
            jitter_s=float(trigger.jitter_s),
        )
    elif isinstance(trigger, SignalTriggerSpec):
        data.update(signal=trigger.signal, match=trigger.match, dedupe=trigger.dedupe)
    elif isinstance(trigger, DataTriggerSpec):
        data.update(
            path=trigger.path,
            poll_s=float(trigger.poll_s),
            timezone=trigger.timezone,
            lookback_days=trigger.lookback_days,
        )
    else:
        raise DefinitionError(
            Problem(f"cannot encode trigger of kind {type(trigger).__name__}", trigger.location)
        )
    if meta:
        where = trigger.location
        data["location"] = {"file": where.file, "line": where.line, "field": where.field}
    return data


def _params_to_dict(trigger: TriggerSpec) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in trigger.params.items():
        if isinstance(value, Expr):
            encoded[name] = {"expr": value.source}
        elif isinstance(value, Const):
            _check_json(value.value, trigger.location.with_field(f"params.{name}"))
            encoded[name] = {"const": value.value}
        else:
            where = trigger.location.with_field(f"params.{name}")
            raise DefinitionError(Problem(f"expected Const or Expr, got {value!r:.80}", where))
    return encoded


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _check_json(value: Any, where: Location) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise DefinitionError(Problem(f"value {value!r:.80} is not JSON: {error}", where)) from None


# -- decoding ----------------------------------------------------------------------------

_COMMON: Final = frozenset({"kind", "params", "location"})
_FIELDS: Final[dict[str, frozenset[str]]] = {
    "cron": frozenset({"cron", "timezone", "catchup", "catchup_window_s", "jitter_s"}),
    "signal": frozenset({"signal", "match", "dedupe"}),
    "data": frozenset({"path", "poll_s", "timezone", "lookback_days"}),
}


def trigger_from_dict(data: Mapping[str, Any], path: str = "triggers") -> AnyTrigger:
    """Decode a dict made by :func:`trigger_to_dict`.

    Raises :class:`DefinitionError` naming ``path`` and the field for an unknown kind,
    an unknown key, a missing key or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        _malformed(path, f"expected an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in _FIELDS:
        _malformed(f"{path}.kind", f"unknown trigger kind {kind!r} (expected cron, signal, data)")
    unknown = sorted(set(data) - _COMMON - _FIELDS[kind])
    if unknown:
        _malformed(path, f"unknown keys {', '.join(map(repr, unknown))}")
    common: dict[str, Any] = {
        "params": _params_from(data.get("params", {}), f"{path}.params"),
        "location": _location_from(data.get("location"), f"{path}.location"),
    }
    reader = _Reader(data, path)
    if kind == "cron":
        catchup = reader.text("catchup", "none")
        if catchup not in CatchUp.__members__.values():
            _malformed(f"{path}.catchup", f"unknown value {catchup!r} (none, latest, all)")
        return CronTriggerSpec(
            cron=reader.text("cron"),
            timezone=reader.text("timezone", "UTC"),
            catchup=CatchUp(catchup),
            catchup_window_s=reader.number("catchup_window_s", None),
            jitter_s=reader.number("jitter_s", 0.0) or 0.0,
            **common,
        )
    if kind == "signal":
        return SignalTriggerSpec(
            signal=reader.text("signal"),
            match=reader.text("match", None),
            dedupe=reader.text("dedupe", None),
            **common,
        )
    lookback = data.get("lookback_days", 1)
    if isinstance(lookback, bool) or not isinstance(lookback, int):
        _malformed(f"{path}.lookback_days", f"expected integer, got {type(lookback).__name__}")
    return DataTriggerSpec(
        path=reader.text("path"),
        poll_s=reader.number("poll_s", 60.0) or 0.0,
        timezone=reader.text("timezone", "UTC"),
        lookback_days=lookback,
        **common,
    )


class _Reader:
    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def text(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                _malformed(f"{self.path}.{key}", "is missing")
            return default
        value = self.data[key]
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            _malformed(f"{self.path}.{key}", f"expected string, got {type(value).__name__}")
        return value

    def number(self, key: str, default: float | None) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            _malformed(f"{self.path}.{key}", f"expected number, got {type(value).__name__}")
        return float(value)


def _params_from(data: Any, path: str) -> dict[str, InputSpec]:
    if not isinstance(data, Mapping):
        _malformed(path, f"expected an object, got {type(data).__name__}")
    params: dict[str, InputSpec] = {}
    for name, value in data.items():
        if isinstance(value, Mapping) and set(value) == {"expr"} and isinstance(value["expr"], str):
            params[str(name)] = Expr(value["expr"])
        elif isinstance(value, Mapping) and set(value) == {"const"}:
            params[str(name)] = Const(value["const"])
        else:
            _malformed(f"{path}.{name}", "expected exactly one of 'const' or 'expr'")
    return params


def _location_from(data: Any, path: str) -> Location:
    if data is None:
        return Location()
    if not isinstance(data, Mapping) or set(data) - {"file", "line", "field"}:
        _malformed(path, "expected an object with file, line, field")
    return Location(file=data.get("file"), line=data.get("line"), field=data.get("field"))


def _malformed(path: str, message: str) -> NoReturn:
    raise DefinitionError(
        Problem(f"malformed workflow dict: {path}: {message}", Location(field=path))
    )


# -- validation ----------------------------------------------------------------------------


def trigger_problems(triggers: tuple[TriggerSpec, ...], declared: frozenset[str]) -> list[Problem]:
    """Every problem of a workflow's triggers; ``declared`` are its parameter names.

    Checks cron syntax (croniter), time zones (zoneinfo), numbers, CEL syntax and the
    variables each expression may read, that ``params`` name declared parameters, data
    path templates, and duplicate triggers. Never raises.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, trigger in enumerate(triggers):
        where = trigger.location
        if where.field is None:
            where = Location(where.file, where.line, f"triggers[{index}]")
        problems.extend(_kind_problems(trigger, where))
        problems.extend(_param_problems(trigger, where, declared))
        if isinstance(trigger, CronTriggerSpec | SignalTriggerSpec | DataTriggerSpec):
            identity = trigger_id("", trigger)
            if identity in seen:
                problems.append(Problem(f"duplicate trigger: {describe(trigger)}", where))
            seen.add(identity)
    return problems


def _kind_problems(trigger: TriggerSpec, where: Location) -> list[Problem]:
    if isinstance(trigger, CronTriggerSpec):
        return _cron_problems(trigger, where)
    if isinstance(trigger, SignalTriggerSpec):
        found = []
        if not trigger.signal or not trigger.signal.strip():
            found.append(
                Problem("a signal trigger needs a signal name", where.with_field("signal"))
            )
        elif (why := signal_name_problem(trigger.signal)) is not None:
            found.append(Problem(why, where.with_field("signal")))
        for name in ("match", "dedupe"):
            source = getattr(trigger, name)
            if source is not None:
                found.extend(_expression_problems(source, trigger, where.with_field(name)))
        return found
    if isinstance(trigger, DataTriggerSpec):
        return _data_problems(trigger, where)
    return [Problem(f"unknown trigger kind {type(trigger).__name__}", where)]


def _cron_problems(trigger: CronTriggerSpec, where: Location) -> list[Problem]:
    found: list[Problem] = []
    problem = cron_problem(trigger.cron)
    if problem is not None:
        found.append(Problem(problem, where.with_field("cron")))
    found.extend(_timezone_problems(trigger.timezone, where))
    for name, value in (
        ("jitter_s", trigger.jitter_s),
        ("catchup_window_s", trigger.catchup_window_s),
    ):
        message = None if value is None else duration_problem(name[:-2], value, positive=False)
        if message is not None:
            found.append(Problem(message, where.with_field(name)))
    return found


def cron_problem(expression: object) -> str | None:
    """What is wrong with a cron expression, or None: 5 fields (minute hour day-of-month
    month day-of-week) or 6 (seconds last), valid, and matching some date. croniter alone
    also takes ``@daily`` and 7 fields (a year), which Kaon's slots do not handle, and
    ``0 6 31 2 *`` (February 31st), which would never fire."""
    import datetime

    from croniter import CroniterBadDateError, croniter

    if (
        not isinstance(expression, str)
        or len(expression.split()) not in (5, 6)
        or not croniter.is_valid(expression)
    ):
        return (
            f"invalid cron expression {expression!r}: expected 5 fields (minute hour "
            "day-of-month month day-of-week) or 6 (seconds last), e.g. '0 6 * * *'"
        )
    try:  # croniter looks 50 years ahead
        croniter(expression, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:
        return (
            f"cron expression {expression!r} never matches a date (such as February 30th): "
            "it would never fire"
        )
    return None


def timezone_problem(name: str) -> str | None:
    """What is wrong with the time zone ``name`` (not an IANA name), or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
    return None


def _timezone_problems(name: str, where: Location) -> list[Problem]:
    problem = timezone_problem(name)
    return [] if problem is None else [Problem(problem, where.with_field("timezone"))]


def _data_problems(trigger: DataTriggerSpec, where: Location) -> list[Problem]:
    import datetime

    found = _timezone_problems(trigger.timezone, where)
    try:
        render_path(trigger.path, datetime.date(2000, 1, 2))
    except (KeyError, ValueError, IndexError) as error:
        found.append(
            Problem(
                f"invalid path template {trigger.path!r}: {error!s}; use {{date}} or "
                "{date:%Y/%m/%d} (strftime fields)",
                where.with_field("path"),
            )
        )
    message = duration_problem("poll", trigger.poll_s, positive=True)
    if message is not None:
        found.append(Problem(message, where.with_field("poll_s")))
    if not 0 <= trigger.lookback_days <= 366:
        found.append(
            Problem("lookback_days must be from 0 to 366", where.with_field("lookback_days"))
        )
    return found


def render_path(template: str, day: Any) -> str:
    """``template`` with ``{date}`` / ``{date:FORMAT}`` filled in for ``day`` (a date).

    Raises KeyError for a field other than ``date``, ValueError for a malformed template.
    """
    return template.format_map(_DateFields(day))


class _DateFields(dict[str, Any]):
    def __init__(self, day: Any) -> None:
        super().__init__(date=_Date(day))

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"unknown template field {{{key}}}")


class _Date:
    def __init__(self, day: Any) -> None:
        self.day = day

    def __format__(self, spec: str) -> str:
        return str(self.day.strftime(spec or "%Y-%m-%d"))


def _param_problems(
    trigger: TriggerSpec, where: Location, declared: frozenset[str]
) -> list[Problem]:
    found: list[Problem] = []
    for name, value in trigger.params.items():
        at = where.with_field(f"params.{name}")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            found.append(
                Problem(f"trigger sets unknown parameter {name!r} (declared: {known})", at)
            )
        if isinstance(value, Expr):
            found.extend(_expression_problems(value.source, trigger, at))
    return found


def _expression_problems(source: str, trigger: TriggerSpec, where: Location) -> list[Problem]:
    from kaon.errors import ExpressionError
    from kaon.model.expressions import analyze, check_roots

    try:
        analysis = analyze(source)
    except ExpressionError as error:
        return [Problem(p.message, where) for p in error.problems]
    messages = check_roots(analysis, trigger.variables)
    return [
        Problem(f"expression {source!r}: {m} in a {trigger.kind} trigger", where) for m in messages
    ]
