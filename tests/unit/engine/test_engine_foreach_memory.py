"""A foreach's memory does not grow with its items: the engine keeps no value per finished item
(results are spooled, items decoded as expanded), and the join gets the whole list."""

from __future__ import annotations

import gc
import re

from conftest import E, Harness, flow, task

from kaon.engine.nodes import Node
from kaon.model.specs import ForeachSpec, GraphSpec
from kaon.model.status import RunStatus
from kaon.model.values import ArtifactRef, Literal, decode_outputs, outputs_value
from kaon.store.base import EventRecord

ITEMS = 3000
ITEM_FRAME = re.compile(r"^each\[\d+\]$")


def _alive(kind: type) -> int:
    # No gc.collect(): garbage that only a full collection would free counts too, since the
    # engine's collector thresholds make full collections rare (see tune_gc).
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_the_engine_keeps_no_value_per_finished_item(inline: Harness) -> None:
    body = GraphSpec(steps=(task("w", "add", inputs={"a": E("item"), "b": 1_000_000}),))
    spec = flow(
        task("src", "biglist", inputs={"n": ITEMS}),
        ForeachSpec(id="each", items=E("steps.src"), body=body, concurrency=200),
        task("sum", "total", inputs={"values": E("steps.each")}),
    )
    engine = inline.engine()
    # Earlier tests in this process may have left garbage (nodes, literals) that a full
    # collection would free: collect it once, and count only what this run keeps alive.
    gc.collect()
    before = (_alive(Literal), _alive(Node))
    done = [0]
    seen: list[int] = []

    def listener(events: list[EventRecord]) -> None:
        for event in events:
            if event.kind == "step" and ITEM_FRAME.match(str(event.data.get("path"))):
                done[0] += event.data.get("status") == "succeeded"
        if done[0] >= 2 * ITEMS // 3 and not seen:
            seen.extend((_alive(Literal) - before[0], _alive(Node) - before[1]))

    engine.subscribe(listener)
    run_id = inline.create(spec)
    assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert seen, "the listener never saw two thirds of the items finish"
    literals, nodes = seen
    assert literals < ITEMS // 3, f"{literals} literals alive after {2 * ITEMS // 3} items"
    assert nodes < ITEMS // 3, f"{nodes} nodes alive after {2 * ITEMS // 3} items"
    expected = [i + 1_000_000 for i in range(ITEMS)]
    assert inline.value(run_id, "each") == expected
    assert inline.value(run_id, "sum") == sum(expected)
    # A list that large is handed to the join as a blob, not held inline in the engine.
    row = inline.store.get_step_run(run_id, "each")
    assert isinstance(outputs_value(decode_outputs(row.outputs)), ArtifactRef)


def test_a_small_foreach_output_stays_inline(inline: Harness) -> None:
    body = GraphSpec(steps=(task("w", "add", inputs={"a": E("item"), "b": 1}),))
    spec = flow(ForeachSpec(id="each", items=E("[1, 2, 3]"), body=body))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    row = inline.store.get_step_run(run_id, "each")
    assert outputs_value(decode_outputs(row.outputs)) == Literal([2, 3, 4])
