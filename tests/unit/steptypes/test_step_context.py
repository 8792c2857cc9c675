"""kaon.context() outside a run: a recording context a unit test asserts on."""

from __future__ import annotations

from typing import Any

import kaon


@kaon.step
def square(x: int) -> int:
    kaon.context().metric("x", x)
    return x * x


def test_context_outside_a_run_records_reports() -> None:
    with kaon.test_context(params={"k": 2}, item="eu") as ctx:
        assert square(3) == 9
        kaon.context().progress(0.5, "half")
        kaon.context().log("two\nlines")
        kaon.context().emit_signal("done", region="eu")
        assert kaon.context().params == {"k": 2} and kaon.context().item == "eu"
    assert ctx.metrics == {"x": [3.0]}
    assert ctx.progress_reports == [(0.5, "half")]
    assert ctx.logs == ["two", "lines"]
    assert ctx.signals == [("done", {"region": "eu"})]


def test_context_without_a_block_is_a_recording_one() -> None:
    ctx: Any = kaon.context()
    assert isinstance(ctx, kaon.RecordingContext)
    ctx.clear()
    square(4)
    assert kaon.context().metrics == {"x": [4.0]}  # type: ignore[attr-defined]
