"""Which fields of which steps an expression reads."""

from __future__ import annotations

import pytest

from kaon.model.expressions import compile_expression


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("steps.check.ok", {"check": {("ok",)}}),
        ('steps["check"]["ok"] && steps.b.x.y', {"check": {("ok",)}, "b": {("x", "y")}}),
        ("steps.check.ok && size(steps.check.regions) > 1", {"check": {("ok",), ("regions",)}}),
        ("size(steps.check) > 0", {"check": {()}}),
        ("steps.fe[index].ok", {"fe": {()}}),
        ("steps.check.regions.map(r, r + 'x')", {"check": {("regions",)}}),
        (
            "has(steps.check.ok) ? steps.a.v : [steps.b.w]",
            {"check": {("ok",)}, "a": {("v",)}, "b": {("w",)}},
        ),
        ("params.k > 1", {}),
    ],
)
def test_paths_read_under_each_step(source: str, expected: dict[str, set[tuple[str, ...]]]) -> None:
    paths = compile_expression(source).step_paths
    assert paths is not None
    assert {k: set(v) for k, v in paths.items()} == expected


@pytest.mark.parametrize("source", ["steps[params.name].ok", "size(steps) > 0"])
def test_paths_unknown_when_steps_is_used_dynamically(source: str) -> None:
    assert compile_expression(source).step_paths is None
