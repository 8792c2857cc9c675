"""How a run uses the cache: lookups on or off, steps forced to execute.

The policy is part of the run (a reserved label, ``kaon.cache``), so a resumed run, a run the
server's engine claims and a restarted run keep it:

* ``lookup`` False (``kaon run --no-cache``): no step takes an earlier execution's outputs;
  every cacheable step executes and records its entry, so later runs can reuse it;
* ``force`` (``kaon run --force STEP``, repeatable): these steps execute without a lookup.
  A name is a step id (every run of that step: each foreach item, each loop iteration) or a
  path (``segments[2].train``); a container's id or path forces everything inside it. Their
  successors follow the normal rules: they hit the cache when the forced step's outputs come
  out the same, and execute when they differ;
* ``restart_force`` (``kaon restart --force``): every step the restart resets executes
  without a lookup; the next restart without ``--force`` clears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kaon.errors import ParameterError
from kaon.model.specs import GraphSpec, WorkflowSpec

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

    def unknown_steps(self, graph: GraphSpec) -> list[str]:
        """The forced names that are no step of ``graph`` (its containers' bodies included)."""
        return self._unknown(_step_ids(graph))

    def _unknown(self, step_ids: Iterable[str]) -> list[str]:
        """The forced names that match no step id nor path of these step ids."""
        known = set(step_ids)
        return [f for f in self.force if _base_ids(f) - known]


def check_cache_policy(spec: WorkflowSpec, policy: CachePolicy | None) -> CachePolicy:
    """``policy`` (the default when None), after checking each forced name is a step of
    ``spec``. Raises ParameterError naming the unknown ones."""
    policy = policy or CachePolicy()
    unknown = policy.unknown_steps(spec.graph)
    if unknown:
        raise ParameterError(
            f"--force: no step {', '.join(map(repr, unknown))} in workflow {spec.name!r}"
        )
    return policy


def _names(name: str, path: str, step_id: str) -> bool:
    if name in (step_id, path):
        return True
    # A forced container: everything inside it; a forced step id at any depth.
    if path.startswith((name + ".", name + "[")):
        return True
    return f".{name}[" in f".{path}" or f".{name}." in f".{path}"


def _step_ids(graph: GraphSpec) -> Iterator[str]:
    for step in graph.steps:
        yield step.id
        body = getattr(step, "body", None)
        if isinstance(body, GraphSpec):
            yield from _step_ids(body)
        inner = getattr(getattr(step, "spec", None), "graph", None)  # a subworkflow's
        if isinstance(inner, GraphSpec):
            yield from _step_ids(inner)


def _base_ids(name: str) -> set[str]:
    ids = set()
    for part in name.split("."):
        ids.add(part.split("[", 1)[0])
    return ids
