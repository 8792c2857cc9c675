"""A value passed between steps keeps its exact type: a tuple returned by a step reaches the
next step, the store's reader and a foreach's join as a tuple (it came back as a list), and
a cacheable step given ``(1, 2)`` does not reuse the result it computed from ``[1, 2]``."""

from __future__ import annotations

from conftest import E, Harness, flow, task

from kaon.artifacts.base import INLINE_LIMIT
from kaon.model.specs import ForeachSpec, GraphSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import ArtifactRef, Literal, decode_outputs


def test_a_tuple_output_reaches_the_next_step_as_a_tuple(harness: Harness) -> None:
    spec = flow(
        task("make", "tuples"),
        task("shape", "typed", inputs={"value": E("steps.make.shape")}),
        task("nested", "typed", inputs={"value": E("steps.make.nested")}),
        task("first", "typed", inputs={"value": E("steps.make.nested[0]")}),
        task("plain", "typed", inputs={"value": E("steps.make.plain")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED, harness.errors(run_id)
    assert harness.value(run_id, "shape") == "(2, 3)"
    assert harness.value(run_id, "nested") == "[(1, 'a'), {'k': (2,)}]"
    assert harness.value(run_id, "first") == "(1, 'a')"
    assert harness.value(run_id, "plain") == "[2]"
    # What the state store holds decodes to the step's value (a restarted engine, a client).
    outputs = decode_outputs(harness.store.get_step_run(run_id, "make").outputs)
    assert outputs["shape"] == Literal((2, 3))
    assert harness.artifacts.get(outputs["nested"]) == [(1, "a"), {"k": (2,)}]


def test_a_foreach_of_tuples_joins_them_as_tuples(inline: Harness) -> None:
    for n, stored in ((3, Literal), (INLINE_LIMIT // 2, ArtifactRef)):
        body = GraphSpec(
            steps=(task("wrap", "as_sequence", inputs={"values": E("[item]"), "kind": "tuple"}),)
        )
        spec = flow(
            task("numbers", "biglist", inputs={"n": n}),
            ForeachSpec(id="each", items=E("steps.numbers"), body=body),
            task("join", "typed", inputs={"value": E("steps.each")}),
        )
        status, run_id = inline.run(spec)
        assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
        each = decode_outputs(inline.store.get_step_run(run_id, "each").outputs)["return"]
        assert isinstance(each, stored)
        assert inline.artifacts.get(each) == [(i,) for i in range(n)]
        assert inline.value(run_id, "join") == repr([(i,) for i in range(n)])


def test_a_tuple_input_is_not_the_cache_key_of_a_list(inline: Harness) -> None:
    def spec(kind: str) -> object:
        return flow(
            task("make", "as_sequence", inputs={"values": [1, 2], "kind": kind}),
            task(
                "use",
                "typed",
                inputs={"value": E("steps.make"), "state": str(inline.state), "name": "use"},
                cache=True,
            ),
        )

    for kind, expected in (("list", "[1, 2]"), ("tuple", "(1, 2)"), ("tuple", "(1, 2)")):
        status, run_id = inline.run(spec(kind))  # type: ignore[arg-type]
        assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
        assert inline.value(run_id, "use") == expected
    assert inline.count("use") == 2
    assert inline.rows(run_id)["use"].status is StepStatus.CACHED


def test_values_json_has_no_type_for_keep_theirs(harness: Harness) -> None:
    names = ("bytes", "when", "day", "money", "frozen", "small", "count", "path", "tuple_of")
    spec = flow(
        task("make", "exotic"),
        *(task(f"see_{n}", "typed", inputs={"value": E(f"steps.make.{n}")}) for n in names),
        task("see_point", "typed", inputs={"value": E("steps.make.point")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED, harness.errors(run_id)
    seen = {n: harness.value(run_id, f"see_{n}") for n in names}
    assert seen == {
        "bytes": "b'\\x00x'",
        "when": "datetime.datetime(2026, 1, 2, 3, 4, 5)",
        "day": "datetime.date(2026, 1, 2)",
        "money": "Decimal('1.10')",
        "frozen": "frozenset({1, 2})",
        "small": "np.float32(1.5)",
        "count": "np.int64(3)",
        "path": "PosixPath('/nowhere/x')",
        "tuple_of": "(b'a', Decimal('2'))",
    }
    assert harness.value(run_id, "see_point").endswith("Point(x=1)")


def test_a_dicts_key_order_is_in_the_cache_key(inline: Harness) -> None:
    """A step iterating a mapping computes from its order: two runs whose mapping differs
    only in order reused one result (the key hashed the mapping with sorted keys)."""

    def spec(keys: list[str]) -> object:
        return flow(
            task("made", "reordered", inputs={"keys": keys}),
            task(
                "use",
                "key_order",
                inputs={"value": E("steps.made.mapping"), "state": str(inline.state)},
                cache=True,
            ),
        )

    keys = ["zeta", "a", "mm"]
    for order in (keys, list(reversed(keys)), keys, sorted(keys)):
        status, run_id = inline.run(spec(order))  # type: ignore[arg-type]
        assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
        assert inline.value(run_id, "use") == order
    assert inline.count("key_order") == 3  # the third run reused the first's
