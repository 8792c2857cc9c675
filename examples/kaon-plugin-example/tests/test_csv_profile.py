"""The example plugin, installed editable: entry point, schema validation, profiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kaon_plugin_example import CsvProfileStepType

from kaon.errors import Location, StepError
from kaon.model.events import ExecutorEvent, MetricReported
from kaon.steptypes.context import StepContext
from kaon.steptypes.registry import check_step_type, get_step_type, step_type_names

HERE = Location("flow.yaml", 4, "steps.profile")
CSV = "name,age,city\nann,34,Oslo\nbob,,Lima\ncy,51,Oslo\n"


def run(config: dict[str, Any], inputs: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    events: list[ExecutorEvent] = []
    ctx = StepContext(("run-1", 1, 1), "profile", "wf", {}, events.append)
    return CsvProfileStepType().run(ctx, config, inputs or {}), events


def test_registered_through_the_entry_point() -> None:
    assert "csv_profile" in step_type_names()
    assert isinstance(get_step_type("csv_profile"), CsvProfileStepType)


def test_profiles_numbers_and_text(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV)
    value, events = run({}, {"file": path})
    assert value == {
        "rows": 3,
        "columns": {
            "name": {"type": "text", "missing": 0, "distinct": 3},
            "age": {"type": "number", "missing": 1, "min": 34.0, "max": 51.0, "mean": 42.5},
            "city": {"type": "text", "missing": 0, "distinct": 2},
        },
    }
    assert [(e.name, e.value) for e in events if isinstance(e, MetricReported)] == [("rows", 3)]


def test_columns_delimiter_and_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "users.tsv"
    path.write_text(CSV.replace(",", "\t"))
    value, _ = run({"file": str(path), "delimiter": "\t", "columns": ["city"], "max_rows": 2})
    assert value == {"rows": 2, "columns": {"city": {"type": "text", "missing": 0, "distinct": 2}}}


def test_unknown_column_and_missing_file_fail_the_step(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV)
    with pytest.raises(StepError, match="has no column zip"):
        run({"file": str(path), "columns": ["zip"]})
    with pytest.raises(StepError) as info:
        run({"file": str(tmp_path / "nope.csv")})
    assert info.value.error_type == "CsvError"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"delimiter": ";;"}, "steps.profile.config.delimiter"),
        ({"max_rows": 0}, "steps.profile.config.max_rows"),
        ({"columns": []}, "steps.profile.config.columns"),
        ({"colums": ["a"]}, "steps.profile.config.colums"),
    ],
)
def test_config_errors_carry_file_line_and_field(config: dict[str, Any], field: str) -> None:
    problems = check_step_type("csv_profile", config, HERE)
    assert [(p.location.file, p.location.line, p.location.field) for p in problems] == [
        ("flow.yaml", 4, field)
    ]
