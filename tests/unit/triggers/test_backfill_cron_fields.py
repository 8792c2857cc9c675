"""A backfill's own --cron is checked like a workflow's: 5 or 6 fields, clear 422 errors."""

from __future__ import annotations

import pytest
from triggers_support import param, register, workflow

from kaon.errors import DefinitionError
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.sql import SQLStore


@pytest.mark.parametrize("cron", ["@daily", "@hourly", "0 0 * * * * *", "0 6 31 2 *"])
def test_a_backfill_cron_a_workflow_would_refuse_is_refused_naming_the_field(
    store: SQLStore, cron: str
) -> None:
    register(store, workflow("plain"))
    request = BackfillRequest(workflow="plain", start="2024-01-01", end="2024-01-03", cron=cron)
    with pytest.raises(DefinitionError) as caught:
        TriggerOperations(store).start_backfill(request)
    assert "cron" in str(caught.value)


@pytest.mark.parametrize("cron", [None, "0 6 * * *"])
def test_a_backfill_with_an_unknown_time_zone_is_refused_naming_timezone(
    store: SQLStore, cron: str | None
) -> None:
    from kaon.model.specs import Expr
    from kaon.model.triggers import CronTriggerSpec

    daily = CronTriggerSpec(cron="0 6 * * *", params={"note": Expr("slot")})
    register(store, workflow("daily", daily, params=(param("note"),)))
    request = BackfillRequest(
        workflow="daily", start="2024-01-01", end="2024-01-03", cron=cron, timezone="Mars/Olympus"
    )
    with pytest.raises(DefinitionError) as caught:
        TriggerOperations(store).start_backfill(request)
    (problem,) = caught.value.problems
    assert problem.location.field == "timezone"  # not "cron": the schedule is fine
    assert "unknown time zone 'Mars/Olympus'" in problem.message
