"""A foreach over items that are not plain JSON (dates, numpy scalars, DataFrames: the items
of a pickled list): each step gets the item with its type, its cache key is the item's
content, and its row shows a bounded text of it."""

from __future__ import annotations

from conftest import E, Harness, flow, task

from kaon.model.specs import ForeachSpec, GraphSpec
from kaon.model.status import RunStatus, StepStatus


def _over(source: str, inputs: dict[str, object], harness: Harness) -> object:
    body = GraphSpec(
        steps=(
            task(
                "use",
                "described",
                inputs={"value": E("item"), "state": str(harness.state), "name": "use"},
                cache=True,
            ),
        )
    )
    return flow(
        task("src", source, inputs=inputs),
        ForeachSpec(id="each", items=E("steps.src"), body=body),
    )


def test_items_that_are_not_json_reach_their_steps_with_their_type(harness: Harness) -> None:
    status, run_id = harness.run(_over("dates", {"n": 2}, harness))  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED, harness.store.get_run(run_id).error
    rows = harness.rows(run_id)
    assert rows["src"].status is StepStatus.SUCCEEDED
    assert harness.value(run_id, "each") == [
        f"date datetime.date(2026, 1, {day}) item date" for day in (1, 2)
    ]
    assert rows["each[1]"].item == "datetime.date(2026, 1, 2)"


def test_the_cache_key_of_an_item_is_its_content(inline: Harness) -> None:
    """Two DataFrames whose ``str()`` is the same (they differ in a middle row) are two
    cache keys: the second run must not reuse the first run's results."""
    _, first = inline.run(_over("frames", {"middle": 1}, inline))  # type: ignore[arg-type]
    assert inline.value(first, "each") == [
        "DataFrame 1 item DataFrame",
        "DataFrame 2 item DataFrame",
    ]
    status, second = inline.run(_over("frames", {"middle": 7}, inline))  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED
    assert inline.value(second, "each") == [
        "DataFrame 7 item DataFrame",
        "DataFrame 8 item DataFrame",
    ]
    assert inline.count("use") == 4
    _, third = inline.run(_over("frames", {"middle": 7}, inline))  # type: ignore[arg-type]
    assert {inline.rows(third)[f"each[{i}].use"].status for i in (0, 1)} == {StepStatus.CACHED}


def test_a_foreach_goes_over_an_arrays_elements_as_python_numbers(inline: Harness) -> None:
    """A step returning a numpy array failed its foreach: "items must be a list, got
    ndarray". Its elements are the items, as Python ints (plain JSON, kept inline)."""
    status, run_id = inline.run(_over("vector", {"n": 3}, inline))  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    assert inline.value(run_id, "each") == [f"int {v} item int" for v in (0, 10, 20)]
    assert inline.rows(run_id)["each[2]"].item == 20
