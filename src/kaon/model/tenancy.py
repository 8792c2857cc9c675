"""Multi-tenancy fields of a step: ``pool``, ``priority`` and ``tags``.

* ``pool`` names the pool whose slots (and resource quotas) an attempt of the step takes
  (``"default"`` unless the step or the workflow's defaults say otherwise). Pools are created
  by an administrator (``kaon pool set``); a run naming a pool that does not exist is refused
  at its start.
* ``priority`` is a whole number in ``[-1000, 1000]``: when more attempts are ready than slots,
  higher run priority first, then higher step priority, then fair share between owner
  groups, then the oldest run.
* ``tags`` are names; a *permit* (``kaon permit set TAG --max N``) allows at most N attempts
  carrying the tag at once, across every workflow, run and engine sharing the store.

The same parsers serve Python (``@kaon.step(pool="gpu", priority=5, tags=["db"])``) and YAML;
each problem is reported with its location and field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from kaon.errors import DefinitionError, Location, Problem

if TYPE_CHECKING:
    from kaon.model.specs import WorkflowSpec

DEFAULT_POOL: Final = "default"
MIN_PRIORITY: Final = -1000
MAX_PRIORITY: Final = 1000
MAX_TAGS: Final = 16
NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}"
_NAME = re.compile(NAME_PATTERN)


def valid_name(name: object) -> bool:
    """Whether ``name`` may name a pool or a tag: 1-63 characters, letters, digits and
    ``_ . : -``, starting with a letter or digit."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def _name_problem(kind: str, value: object) -> str:
    return (
        f"{kind} must be a name of 1-63 letters, digits, '_', '.', ':' or '-' "
        f"(starting with a letter or digit), got {value!r:.60}"
    )


def parse_pool(value: Any, location: Location) -> str | None:
    """A step's ``pool`` (None stays None). Raises DefinitionError at ``location``."""
    if value is None:
        return None
    if not valid_name(value):
        raise DefinitionError(Problem(_name_problem("pool", value), location))
    return str(value)


def parse_priority(value: Any, location: Location) -> int | None:
    """A ``priority``: a whole number in [-1000, 1000] (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(
            Problem(f"priority must be a whole number, got {value!r:.60}", location)
        )
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise DefinitionError(
            Problem(
                f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {value}",
                location,
            )
        )
    return value


def parse_tags(value: Any, location: Location) -> tuple[str, ...]:
    """A step's ``tags``: a list of distinct names (at most 16); None is no tags."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise DefinitionError(Problem(f"tags must be a list of names, got {value!r:.60}", location))
    items = list(value)
    problems: list[Problem] = []
    if len(items) > MAX_TAGS:
        problems.append(Problem(f"at most {MAX_TAGS} tags, got {len(items)}", location))
    seen: set[str] = set()
    for index, tag in enumerate(items):
        where = Location(location.file, location.line, f"{location.field or 'tags'}[{index}]")
        if not valid_name(tag):
            problems.append(Problem(_name_problem("a tag", tag), where))
        elif tag in seen:
            problems.append(Problem(f"tag {tag!r} is given twice", where))
        else:
            seen.add(tag)
    if problems:
        raise DefinitionError(problems)
    return tuple(items)


def check_priority_value(value: Any, what: str) -> int:
    """A priority given outside a definition (a run's ``--priority``, an API field); raises
    DefinitionError naming ``what``."""
    try:
        result = parse_priority(value, Location(field=what))
    except DefinitionError as error:
        raise DefinitionError(
            [Problem(f"{what}: {p.message}", p.location) for p in error.problems]
        ) from None
    return 0 if result is None else result


def pools_named(spec: WorkflowSpec) -> list[tuple[str, str, Location]]:
    """Every pool other than ``default`` that ``spec`` names (subworkflows included), as
    ``(pool, who names it, location with its field)``."""
    found: list[tuple[str, str, Location]] = []
    if spec.defaults.pool != DEFAULT_POOL:
        found.append(
            (
                spec.defaults.pool,
                f"workflow {spec.name!r}",
                spec.location.with_field("defaults.pool"),
            )
        )
    for path, step in spec.graph.walk():
        if step.pool is not None and step.pool != DEFAULT_POOL:
            found.append((step.pool, f"step {path!r}", step.location.with_field("pool")))
        sub = getattr(step, "spec", None)
        if sub is not None:
            found.extend(pools_named(sub))
    return found
