"""``kaon skip RUN STEP`` of a finished run with a mistyped step suggests the step meant,
as ``restart --from``, ``logs``, ``--force`` and ``--break`` do."""

from __future__ import annotations

import pytest
from conftest import Harness, flow, task

from kaon.engine import operations
from kaon.errors import NotFoundError
from kaon.model.status import RunStatus


def test_a_mistyped_step_to_skip_gets_a_suggestion(inline: Harness) -> None:
    spec = flow(task("bad", "boom"), task("total", "const", needs=("bad",)))
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    with pytest.raises(NotFoundError, match=r"has no step 'tota' \(did you mean 'total'\?\)"):
        operations.skip_step(inline.store, run_id, "tota")
    with pytest.raises(NotFoundError, match=r"has no step 'zzz'$"):
        operations.skip_step(inline.store, run_id, "zzz")


def test_a_mistyped_step_of_an_active_run_gets_a_suggestion(inline: Harness) -> None:
    """``kaon skip``/``kill --step`` of a running run: checked before the command is sent."""
    from kaon.engine.targets import check_step_target

    run_id = inline.create(flow(task("slow", "const"), task("total", "const")))
    record = inline.store.get_run(run_id)
    with pytest.raises(NotFoundError, match=r"no 'slo' at the top level \(did you mean 'slow'"):
        check_step_target(inline.store, record, "slo")
