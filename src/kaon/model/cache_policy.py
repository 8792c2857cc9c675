"""How a run uses the cache: lookups on or off, steps forced to execute.

The policy is part of the run (a reserved label, ``kaon.cache``), so a resumed run, a run the
server's engine claims and a restarted run keep it:

* ``lookup`` False (``kaon run --no-cache``): no step takes an earlier execution's outputs;
  every cacheable step executes and records its entry, so later runs can reuse it;
* ``force`` (``kaon run --force STEP``, repeatable): these steps execute without a lookup.
  A name is a step id (every run of that step: each foreach item, each loop iteration), a
  path without indexes (``segments.train``: every item's ``train``), a path
  (``segments[2].train``), or one with indexes at some levels only (every item where none
  is given: :func:`kaon.model.breakpoints.names_path`); a container's id or path forces
  everything inside it. A name is checked as a breakpoint's is
  (:func:`kaon.model.breakpoints.unreachable_step`): one that can match no step run
  (``segments[x]``, ``train.segments``) is refused. Their successors follow the normal
  rules: they hit the cache when the forced step's outputs come out the same, and execute
  when they differ;
* ``restart_force`` (``kaon restart --force``): every step the restart resets executes
  without a lookup; the next restart without ``--force`` clears it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaon.errors import ParameterError
from kaon.model.breakpoints import names_path, step_name, unreachable_step
from kaon.model.specs import WorkflowSpec

CACHE_LABEL = "kaon.cache"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A run's use of the cache (see the module docstring)."""

    lookup: bool = True
    force: tuple[str, ...] = ()
    restart_force: bool = False

    @classmethod
    def from_labels(cls, labels: Mapping[str, Any]) -> CachePolicy:
        """The policy recorded in a run's labels (the default when none is)."""
        data = labels.get(CACHE_LABEL)
        if not isinstance(data, Mapping):
            return cls()
        force = data.get("force") or ()
        return cls(
            lookup=bool(data.get("lookup", True)),
            force=tuple(str(f) for f in force),
            restart_force=bool(data.get("restart_force", False)),
        )

    def with_labels(self, labels: Mapping[str, Any]) -> dict[str, Any]:
        """``labels`` with this policy recorded (removed when it is the default)."""
        merged = {k: v for k, v in labels.items() if k != CACHE_LABEL}
        if self != CachePolicy():
            merged[CACHE_LABEL] = {
                "lookup": self.lookup,
                "force": list(self.force),
                "restart_force": self.restart_force,
            }
        return merged

    def skips_lookup(self, path: str, step_id: str) -> bool:
        """Whether the step run at ``path`` (of step ``step_id``) must execute unlooked."""
        if not self.lookup or self.restart_force:
            return True
        return any(_names(f, path, step_id) for f in self.force)

    def unreachable_steps(self, spec: WorkflowSpec) -> list[str]:
        """Why each forced name that can match no step run of ``spec`` cannot (as for a
        breakpoint: ``no step 'nope'``, ``'each[x]' is not STEP or STEP[INDEX]``)."""
        return [
            why if repr(name) in why else f"{name!r}: {why}"
            for name in self.force
            if (why := unreachable_step(spec, name)) is not None
        ]


def check_cache_policy(spec: WorkflowSpec, policy: CachePolicy | None) -> CachePolicy:
    """``policy`` (the default when None), after checking each forced name can match a step
    run of ``spec``. Raises ParameterError naming the others and why."""
    policy = policy or CachePolicy()
    policy = dataclasses.replace(policy, force=tuple(step_name(f) for f in policy.force))
    unreachable = policy.unreachable_steps(spec)
    if unreachable:
        raise ParameterError(f"--force: {'; '.join(unreachable)} in workflow {spec.name!r}")
    return policy


def _names(name: str, path: str, step_id: str) -> bool:
    # The step, or a forced container (by path, indexes given at any levels, or none):
    # everything inside it; a forced step id at any depth.
    if name == step_id or names_path(name, path, inside=True):
        return True
    return f".{name}[" in f".{path}" or f".{name}." in f".{path}"
