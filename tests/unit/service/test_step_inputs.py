"""A task's inputs resolved when read, at any depth: in a foreach inside a loop (the item and
the iteration bound from the frame rows) and in a subworkflow (its parameters are the
parent's resolved inputs, its steps are its own)."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Iterator

import pytest

from kaon.dsl.loader import load_workflow
from kaon.service import LocalService, Settings
from kaon.service.run_reads import RunReads
from kaon.service.step_inputs import InputView

PARENT = """
    name: parent
    params:
      k: {type: int, default: 2}
    steps:
      - id: prepare
        shell: "echo ::kaon::output rows=[10,20]"
      - id: again
        needs: [prepare]
        loop: {until: "${{ iteration >= 1 }}", max_iterations: 3}
        steps:
          - id: each
            foreach: "${{ steps.prepare.rows }}"
            steps:
              - id: fit
                shell: "true"
                inputs: {row: "${{ item }}", round: "${{ iteration }}", k: "${{ params.k * 10 }}"}
      - id: child
        workflow: child.yaml
        inputs: {x: "${{ steps.prepare.rows }}"}
      - id: late
        needs: [again]
        shell: "true"
        inputs: {gone: "${{ steps.again }}", missing: "${{ steps.prepare.nothing }}"}
"""
CHILD = """
    name: child
    params:
      x: {type: list, default: []}
    steps:
      - id: first
        shell: "echo ::kaon::output n=5"
      - id: use
        needs: [first]
        shell: "true"
        inputs: {x: "${{ params.x }}", n: "${{ steps.first.n }}"}
"""


@pytest.fixture
def service(tmp_path: pathlib.Path) -> Iterator[LocalService]:
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


def _inputs(reads: RunReads, run_id: str, path: str) -> dict[str, InputView]:
    return {i.name: i for i in reads.step(run_id, path).inputs}


def test_inputs_in_a_foreach_in_a_loop_and_in_a_subworkflow(
    service: LocalService, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "parent.yaml").write_text(textwrap.dedent(PARENT))
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHILD))
    run_id = service.create_run(load_workflow(str(tmp_path / "parent.yaml")), {"k": 4}).id
    service.execute(run_id)
    reads = RunReads(service.store, service.artifacts)

    fit = _inputs(reads, run_id, "again[1].each[0].fit")
    assert (fit["row"].kind, fit["row"].preview) == ("variable", "10")
    assert (fit["round"].kind, fit["round"].preview) == ("variable", "1")
    assert (fit["k"].kind, fit["k"].preview, fit["k"].error) == ("expression", "40", None)
    use = _inputs(reads, run_id, "child.use")
    assert (use["x"].kind, use["x"].param, use["x"].preview) == ("param", "x", "[10, 20]")
    assert (use["n"].step, use["n"].output, use["n"].preview) == ("child.first", "n", "5")
    late = _inputs(reads, run_id, "late")
    assert late["gone"].kind == "step" and late["gone"].step == "again"
    assert late["missing"].error and late["missing"].preview is None
    # Without an artifact store the read resolves nothing (and costs nothing more).
    assert RunReads(service.store).step(run_id, "late").inputs == []
