"""An R script's or a notebook's reads of the run's facts (``kaon_params()``,
``Sys.getenv("KAON_ITEM")``, ``os.environ["KAON_PARAMS"]``) are in its cache key, as a
Python step's ``kaon.context()`` reads and a shell command's ``$KAON_ITEM`` are: a cached R
step in a foreach gave every item the first item's result, and one reading a parameter
reused its result after the parameter changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import E, Harness, flow

from kaon.model.specs import ForeachSpec, GraphSpec, ParamSpec, ParamType, TaskSpec
from kaon.model.status import RunStatus, StepStatus


def _task(step_id: str, step_type: str, config: dict[str, Any]) -> TaskSpec:
    return TaskSpec(id=step_id, step_type=step_type, config=config, cache=True)


def test_an_r_step_reading_its_item_is_keyed_by_it(inline: Harness) -> None:
    code = 'kaon_output("seen", Sys.getenv("KAON_ITEM"))'
    body = GraphSpec(steps=(_task("r", "r", {"code": code}),))
    spec = flow(ForeachSpec(id="each", items=E("[1, 2, 3]"), body=body, concurrency=1))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "each") == [{"seen": "1"}, {"seen": "2"}, {"seen": "3"}]


def test_an_r_script_reading_a_parameter_is_keyed_by_it(inline: Harness) -> None:
    script = inline.tmp / "scale.R"
    script.write_text('kaon_output("k", kaon_params()$k * 10)\n')
    spec = flow(
        _task("r", "r", {"file": str(script)}),
        _task("plain", "r", {"code": 'kaon_output("n", 1)'}),  # reads no fact
        params=(ParamSpec(name="k", type=ParamType.INT, default=1),),
    )
    seen = []
    for k in (1, 2, 2):
        status, run_id = inline.run(spec, {"k": k})
        assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
        rows = inline.rows(run_id)
        seen.append((inline.value(run_id, "r"), rows["r"].status, rows["plain"].status))
    assert seen == [
        ({"k": 10}, StepStatus.SUCCEEDED, StepStatus.SUCCEEDED),
        ({"k": 20}, StepStatus.SUCCEEDED, StepStatus.CACHED),
        ({"k": 20}, StepStatus.CACHED, StepStatus.CACHED),
    ]


@pytest.mark.slow
def test_a_notebook_reading_the_parameters_is_keyed_by_them(inline: Harness) -> None:
    import nbformat

    cell = (
        "import json, os\nimport kaon.notebook\n"
        'kaon.notebook.record("k", json.loads(os.environ["KAON_PARAMS"])["k"])'
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])  # type: ignore[no-untyped-call]
    path = inline.tmp / "read_params.ipynb"
    path.write_text(json.dumps(notebook))
    spec = flow(
        _task("nb", "notebook", {"file": str(path), "html": False}),
        params=(ParamSpec(name="k", type=ParamType.INT, default=1),),
    )
    for k in (1, 2):
        status, run_id = inline.run(spec, {"k": k})
        assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
        assert inline.value(run_id, "nb")["k"] == k


@pytest.mark.slow
def test_a_notebook_in_a_foreach_reads_its_item_and_index(inline: Harness) -> None:
    """A notebook's kernel had ``KAON_PARAMS`` but not ``KAON_ITEM``/``KAON_INDEX``/
    ``KAON_ITERATION``, which a shell or R step gets: an item's notebook could not read it."""
    import nbformat

    cell = (
        "import json, os\nimport kaon.notebook\n"
        'kaon.notebook.record("item", json.loads(os.environ["KAON_ITEM"]))\n'
        'kaon.notebook.record("index", int(os.environ["KAON_INDEX"]))\n'
        'kaon.notebook.record("iteration", os.environ["KAON_ITERATION"])'
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])  # type: ignore[no-untyped-call]
    path = inline.tmp / "read_item.ipynb"
    path.write_text(json.dumps(notebook))
    body = GraphSpec(steps=(_task("nb", "notebook", {"file": str(path), "html": False}),))
    spec = flow(ForeachSpec(id="each", items=E('["a", "b"]'), body=body, concurrency=1))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    seen = [
        {k: v for k, v in item.items() if k != "notebook"} for item in inline.value(run_id, "each")
    ]
    assert seen == [
        {"item": "a", "index": 0, "iteration": ""},
        {"item": "b", "index": 1, "iteration": ""},
    ]
