"""The ``breakpoint`` step option, from Python and YAML, and through the codec."""

from __future__ import annotations

from pathlib import Path

import pytest

import kaon
from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError
from kaon.model.codec import spec_hash, workflow_from_dict, workflow_to_dict


@kaon.step(breakpoint="after")
def train(x: int) -> int:
    return x


@kaon.step(breakpoint=True)
def check(x: int) -> int:
    return x


@kaon.step
def plain(x: int) -> int:
    return x


@kaon.workflow(name="with_breaks")
def with_breaks(x: int = 1) -> None:
    plain(check(train(x)))


def test_python_option() -> None:
    steps = {s.id: s.breakpoint for s in with_breaks.spec.graph.steps}
    assert steps == {"train": "after", "check": "before", "plain": ""}


def test_python_option_refuses_other_values() -> None:
    with pytest.raises(DefinitionError, match="breakpoint"):
        kaon.step(breakpoint="sometimes")


def test_yaml_option(tmp_path: Path) -> None:
    source = (
        "name: y\nsteps:\n"
        "  - {id: a, shell: 'true', breakpoint: true}\n"
        "  - {id: b, shell: 'true', breakpoint: after, needs: [a]}\n"
        "  - {id: c, shell: 'true', needs: [b]}\n"
    )
    spec = load_yaml_text(source, tmp_path / "y.yaml")
    assert [s.breakpoint for s in spec.graph.steps] == ["before", "after", ""]
    with pytest.raises(DefinitionError, match="breakpoint"):
        load_yaml_text(source.replace("after", "later"), tmp_path / "y.yaml")


def test_codec_round_trip_keeps_it_and_hashes_of_others_do_not_change() -> None:
    spec = with_breaks.spec
    assert workflow_from_dict(workflow_to_dict(spec)) == spec
    data = workflow_to_dict(spec)
    plain_step = next(s for s in data["graph"]["steps"] if s["id"] == "plain")
    assert "breakpoint" not in plain_step  # absent when unset: existing hashes hold
    assert spec_hash(spec) == spec_hash(workflow_from_dict(data))
