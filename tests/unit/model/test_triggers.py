"""Trigger specs: codec round trips, hashes, validation, and both front ends."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.errors import DefinitionError
from kaon.model.codec import spec_hash, workflow_from_dict, workflow_to_dict
from kaon.model.specs import Const, Expr, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec
from kaon.model.triggers import (
    CatchUp,
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    render_path,
    trigger_from_dict,
    trigger_id,
)
from kaon.model.validation import validate_workflow


def _spec(*triggers: object, params: tuple[ParamSpec, ...] = ()) -> WorkflowSpec:
    step = TaskSpec(id="a", step_type="shell", config={"command": "true"})
    return WorkflowSpec(
        name="wf",
        graph=GraphSpec(steps=(step,)),
        params=params,
        triggers=tuple(triggers),  # type: ignore[arg-type]
    )


DAY = ParamSpec("day", ParamType.STR, "")
REGION = ParamSpec("region", ParamType.STR, "eu")


def _all_kinds() -> WorkflowSpec:
    return _spec(
        CronTriggerSpec(
            cron="0 6 * * *",
            timezone="Europe/Paris",
            catchup=CatchUp.ALL,
            catchup_window_s=86400,
            jitter_s=30,
            params={"day": Expr("slot")},
        ),
        SignalTriggerSpec(
            signal="ready", match="signal.region == 'eu'", params={"region": Const("eu")}
        ),
        DataTriggerSpec(path="memory://b/{date:%Y%m%d}/_SUCCESS", poll_s=5.0),
        params=(DAY, REGION),
    )


def test_codec_round_trips_every_trigger_kind() -> None:
    spec = _all_kinds()
    assert workflow_from_dict(workflow_to_dict(spec)) == spec
    assert validate_workflow(spec) == []


def test_a_workflow_without_triggers_encodes_and_hashes_as_before() -> None:
    spec = _spec()
    assert "triggers" not in workflow_to_dict(spec)
    with_trigger = _spec(SignalTriggerSpec(signal="x"))
    assert spec_hash(with_trigger) != spec_hash(spec)


def test_trigger_id_is_stable_and_ignores_location() -> None:
    a = SignalTriggerSpec(signal="x")
    b = SignalTriggerSpec(signal="x", location=kaon.errors.Location("f.yaml", 3))
    assert trigger_id("wf", a) == trigger_id("wf", b)
    assert trigger_id("wf", a) != trigger_id("wf", SignalTriggerSpec(signal="y"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "nope"}, "unknown trigger kind"),
        ({"kind": "cron"}, "cron: is missing"),
        ({"kind": "cron", "cron": "* * * * *", "catchup": "some"}, "unknown value 'some'"),
        ({"kind": "signal", "signal": "x", "extra": 1}, "unknown keys 'extra'"),
        ({"kind": "data", "path": "p", "poll_s": "fast"}, "expected number"),
        ({"kind": "signal", "signal": "x", "params": {"a": 1}}, "exactly one of"),
    ],
)
def test_malformed_trigger_dicts_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        trigger_from_dict(data)


def _messages(spec: WorkflowSpec) -> list[str]:
    return [f"{p.location.field}: {p.message}" for p in validate_workflow(spec)]


def test_validation_reports_every_trigger_problem_with_its_field() -> None:
    spec = _spec(
        CronTriggerSpec(cron="61 * * * *", timezone="Mars/Olympus", jitter_s=-1),
        SignalTriggerSpec(signal="x", match="signal.a ==", params={"nope": Expr("params.x")}),
        DataTriggerSpec(path="s3://b/{day}/x", poll_s=0),
        params=(DAY,),
    )
    messages = _messages(spec)
    expected = [
        "triggers[0].cron: invalid cron expression",
        "triggers[0].timezone: unknown time zone 'Mars/Olympus'",
        "triggers[0].jitter_s: jitter must be from 0 to 366d, got -1s",
        "triggers[1].match: invalid expression",
        "triggers[1].params.nope: trigger sets unknown parameter 'nope'",
        "triggers[1].params.nope: expression 'params.x': unknown variable 'params'",
        "triggers[2].path: invalid path template",
        "triggers[2].poll_s: poll must be more than 0 and at most 366d, got 0s",
    ]
    for start in expected:
        assert any(m.startswith(start) for m in messages), (start, messages)


def test_duplicate_triggers_are_reported() -> None:
    spec = _spec(SignalTriggerSpec(signal="x"), SignalTriggerSpec(signal="x"))
    assert any("duplicate trigger" in m for m in _messages(spec))


def test_render_path_fills_date_fields() -> None:
    import datetime as dt

    day = dt.date(2024, 3, 9)
    assert render_path("s3://b/{date}/{date:%Y/%m}/x", day) == "s3://b/2024-03-09/2024/03/x"
    with pytest.raises(KeyError):
        render_path("{other}", day)


YAML = """
name: nightly
params:
  day: {type: str, default: ""}
  region: eu
steps:
  - id: a
    shell: echo hi
triggers:
  - cron: "0 6 * * *"
    timezone: Europe/Paris
    catchup: latest
    catchup_window: 2h
    jitter: 30s
    params: {day: "${{ slot }}"}
  - signal: data_ready
    match: signal.region == 'eu'
    dedupe: "${{ signal.date }}"
    params: {region: "${{ signal.region }}"}
  - data: "memory://bucket/{date:%Y-%m-%d}/_SUCCESS"
    poll: 1m
    lookback_days: 2
"""


def test_yaml_triggers(tmp_path: Path) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text(YAML)
    spec = kaon.load_workflow(str(file))
    cron, signal, data = spec.triggers
    assert isinstance(cron, CronTriggerSpec)
    assert (cron.cron, cron.timezone, cron.catchup) == ("0 6 * * *", "Europe/Paris", CatchUp.LATEST)
    assert (cron.catchup_window_s, cron.jitter_s) == (7200.0, 30.0)
    assert cron.params == {"day": Expr("slot")}
    assert isinstance(signal, SignalTriggerSpec)
    assert (signal.signal, signal.match, signal.dedupe) == (
        "data_ready",
        "signal.region == 'eu'",
        "signal.date",
    )
    assert isinstance(data, DataTriggerSpec)
    assert (data.poll_s, data.lookback_days) == (60.0, 2)


def test_yaml_trigger_problems_point_at_their_lines(tmp_path: Path) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text(
        textwrap.dedent(
            """\
            name: bad
            steps:
              - id: a
                shell: echo hi
            triggers:
              - cron: "0 6 * *"
                poll: 1m
              - signal: x
                jitter: 1s
              - {}
              - cron: "0 6 * * *"
                timezone: Nowhere/Land
            """
        )
    )
    with pytest.raises(DefinitionError) as caught:
        kaon.load_workflow(str(file))
    found = {(p.location.line, p.message.split(":")[0]) for p in caught.value.problems}
    assert (6, "invalid cron expression '0 6 * *'") in found
    assert (7, "'poll' does not apply to a cron trigger") in found
    assert (9, "'jitter' does not apply to a signal trigger") in found
    assert any(line == 10 and "exactly one of cron" in m for line, m in found)
    assert (12, "unknown time zone 'Nowhere/Land'") in found


@kaon.step
def hello(day: str) -> str:
    return day


def test_python_dsl_triggers() -> None:
    @kaon.workflow(
        triggers=[
            kaon.cron(
                "0 6 * * *", timezone="Europe/Paris", jitter="30s", params={"day": "${{ slot }}"}
            ),
            kaon.on_signal("ready", match="signal.ok", params={"day": kaon.expr("signal.day")}),
            kaon.on_data("memory://b/{date}/_SUCCESS", poll="1m"),
        ]
    )
    def flow(day: str = "") -> None:
        hello(day=day)

    cron, signal, data = flow.spec.triggers
    assert isinstance(cron, CronTriggerSpec) and cron.jitter_s == 30.0
    assert cron.location.file == __file__
    assert isinstance(signal, SignalTriggerSpec) and signal.params == {"day": Expr("signal.day")}
    assert isinstance(data, DataTriggerSpec) and data.poll_s == 60.0


def test_python_dsl_rejects_bad_trigger_options() -> None:
    with pytest.raises(DefinitionError, match="catchup must be one of"):
        kaon.cron("* * * * *", catchup="sometimes")
    with pytest.raises(DefinitionError, match=r"triggers takes kaon\.cron"):

        @kaon.workflow(triggers=["0 6 * * *"])
        def flow() -> None:
            pass

    @kaon.workflow(triggers=[kaon.cron("0 6 * * *", params={"missing": 1})])
    def other() -> None:
        pass

    with pytest.raises(DefinitionError, match="unknown parameter 'missing'"):
        _ = other.spec


def test_a_bad_yaml_trigger_field_does_not_hide_a_bad_time_zone(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        textwrap.dedent(
            """\
            name: zones
            steps:
              - id: a
                shell: "true"
            triggers:
              - cron: "0 6 * * *"
                catchup: sometimes
                timezone: Mars/Olympus
            """
        )
    )
    with pytest.raises(DefinitionError) as caught:
        kaon.load_workflow(str(file))
    found = [(p.location.line, p.location.field, p.message) for p in caught.value.problems]
    assert [(line, field) for line, field, _ in found] == [
        (7, "triggers[0].catchup"),
        (8, "triggers[0].timezone"),
    ], found
    assert found[1][2].startswith("unknown time zone 'Mars/Olympus'"), found


def test_a_yaml_data_triggers_bad_template_is_located_at_its_data_key(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        textwrap.dedent(
            """\
            name: arrivals
            steps:
              - id: a
                shell: "true"
            triggers:
              - data: "/tmp/x/{day}"
            """
        )
    )
    with pytest.raises(DefinitionError) as caught:
        kaon.load_workflow(str(file))
    [problem] = caught.value.problems
    assert (problem.location.line, problem.location.field) == (6, "triggers[0].data")
