"""Breakpoints in a run: pausing before or after a step, and going on.

A step run that a breakpoint names (see :mod:`kaon.model.breakpoints`) is held instead of
started (``before``), or once it succeeded with its outputs recorded but not passed on
(``after``): its row goes to ``paused`` and the run's to ``paused`` while any step is held.
Other steps go on. ``continue`` (a command, so a durable row) releases the held steps (one,
or all), optionally with changed parameters; a skip or a kill ends them like any step.

Every decision is a row: a held step's status and reason, a released step's reason
(``breakpoint passed``, so a resumed engine does not hold it again) and the run's status, so
an engine killed while a run is paused resumes it paused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaon.engine.core import RunCore
from kaon.engine.nodes import Node
from kaon.errors import InvalidActionError
from kaon.model.breakpoints import (
    BREAK_AFTER,
    BREAK_AFTER_CACHED,
    BREAK_BEFORE,
    BREAK_PASSED,
    Breakpoints,
    Moment,
)
from kaon.model.specs import TaskSpec
from kaon.model.status import RunStatus, StepStatus, check_run_transition
from kaon.model.values import encode_outputs

_S = StepStatus


class BreakpointSteps(RunCore):
    """Holding steps at breakpoints and releasing them."""

    _breaks: tuple[dict[str, Any], Breakpoints] | None = None  # (labels read, breakpoints)

    def _breakpoints(self) -> Breakpoints:
        labels = self.record.labels
        if self._breaks is None or self._breaks[0] is not labels:
            self._breaks = (labels, Breakpoints.from_labels(labels))
        return self._breaks[1]

    def _stops(self, node: Node, moment: Moment) -> bool:
        """Whether ``node`` is held at ``moment`` (a released one is not held again)."""
        if moment == "before" and node.reason == BREAK_PASSED:
            return False
        return self._breakpoints().stops(node.path, node.spec, moment)

    def _holds_before(self, node: Node) -> bool:
        """Hold a ready node at its ``before`` breakpoint; True when held."""
        if not self._stops(node, "before"):
            return False
        note: dict[str, Any] = {"breakpoint": "before"}
        if isinstance(node.spec, TaskSpec):
            try:  # what the step would receive, for a person to inspect
                note["inputs"] = encode_outputs(self.resolver.inputs(node))
            except Exception as exc:  # a user's value or expression: shown, not raised
                note["inputs_error"] = str(exc)
        node.reason = BREAK_BEFORE
        self._set(node, _S.PAUSED, note, reason=BREAK_BEFORE)
        self._hold(node)
        return True

    def _holds_after(self, node: Node) -> bool:
        """Whether a node that just succeeded is held at its ``after`` breakpoint."""
        return isinstance(node.spec, TaskSpec) and self._stops(node, "after")

    def _hold(self, node: Node) -> None:
        """Count ``node`` as held; the run is paused while any node is."""
        self.paused[node.path] = node
        self._run_status(RunStatus.PAUSED)

    def _released(self, node: Node) -> None:
        """``node`` left ``paused`` (continued, skipped, cancelled)."""
        if self.paused.pop(node.path, None) is not None and not self.paused:
            self._run_status(RunStatus.RUNNING)

    def _run_status(self, status: RunStatus) -> None:
        if self.finished or self.status is status:
            return
        check_run_transition(self.status, status, f"run {self.id}")
        self.status = status
        self.ctx.batch.update_run(self.id, status=status)
        self._event("run", {"status": status.value, "paused": sorted(self.paused)})
        now = self.ctx.clock()
        if status is RunStatus.PAUSED:  # the run's time limit stops while it is paused
            self.paused_since = now
            self.ctx.timers.cancel("run_timeout", self.id)
        elif self.paused_since is not None:
            self.paused_total += max(0.0, now - self.paused_since)
            self.paused_since = None
            self.arm_run_timeout()

    def arm_run_timeout(self) -> None:
        """Set the timer of the workflow's ``timeout_s``, unless the run is paused: due when
        the run has been running (not paused) that long since it started."""
        limit = self.spec.timeout_s
        if limit is None or self.paused_since is not None:
            return
        started = self.record.started_at or self.ctx.clock()
        self.ctx.timers.add(started + self.paused_total + limit, "run_timeout", self.id)

    def continue_steps(
        self, path: str | None = None, params: Mapping[str, Any] | None = None, by: str = ""
    ) -> None:
        """Release the held step at ``path`` (every held step when None), first replacing
        the run's parameters with ``params`` when given (already bound and checked).

        Raises InvalidActionError when no step is held there.
        """
        if path is not None and path not in self.paused:
            raise InvalidActionError(f"step {path!r} of run {self.id} is not paused")
        if not self.paused:
            raise InvalidActionError(f"run {self.id} has no paused step")
        if params is not None:
            self.root.params.clear()
            self.root.params.update(params)  # item and iteration frames share this mapping
            self.ctx.batch.update_run(self.id, params=dict(params))
        nodes = [self.paused[path]] if path is not None else list(self.paused.values())
        self._event("action", {"action": "continue", "paths": [n.path for n in nodes], "by": by})
        for node in nodes:
            if node.reason in (BREAK_AFTER, BREAK_AFTER_CACHED):
                status = _S.CACHED if node.reason == BREAK_AFTER_CACHED else _S.SUCCEEDED
                node.reason = ""
                self._set(node, status, reason="")
                self._terminal(node)
            else:
                node.reason = BREAK_PASSED
                self._set(node, _S.PENDING, reason=BREAK_PASSED)
                self.work.append(node)


__all__ = ["BREAK_AFTER", "BREAK_BEFORE", "BREAK_PASSED", "BreakpointSteps"]
