"""A skipped step shows the time it spent working, and none when it did no work: a wait
step skipped while it waited never ran (no attempt), unlike a task skipped while its attempt
ran, or a foreach whose items ran."""

from __future__ import annotations

from kaon.model.status import StepStatus
from kaon.service.run_reads import node_view
from kaon.service.views import step_view
from kaon.store.base import AttemptRecord, StepRunRecord

S = StepStatus


def _row(
    kind: str, status: StepStatus, started: float | None, ended: float | None
) -> StepRunRecord:
    return StepRunRecord("r", 1, "s", "s", kind, status, started_at=started, ended_at=ended)


def test_a_skipped_step_shows_only_the_time_it_worked() -> None:
    waited = _row("wait", S.SKIPPED, 10.0, 12.5)
    assert node_view(waited, None, 20.0).duration_s is None
    assert step_view(waited, [], None, 20.0).duration_s is None
    pending = _row("task", S.SKIPPED, None, 12.5)
    assert node_view(pending, None, 20.0).duration_s is None
    ran = _row("task", S.SKIPPED, 10.0, 12.5)  # skipped while its attempt ran
    attempt = AttemptRecord("r", 1, 1, "cancelled", started_at=10.0, ended_at=12.5)
    assert node_view(ran, None, 20.0, 1).duration_s == 2.5
    assert step_view(ran, [attempt], None, 20.0).duration_s == 2.5
    items = _row("foreach", S.SKIPPED, 10.0, 14.0)
    assert node_view(items, {S.SUCCEEDED: 3}, 20.0).duration_s == 4.0
    # a wait step that got its signal, or still waits, shows how long it waited
    assert node_view(_row("wait", S.SUCCEEDED, 10.0, 12.5), None, 20.0).duration_s == 2.5
    assert step_view(_row("wait", S.WAITING, 10.0, None), [], None, 20.0).duration_s == 10.0
