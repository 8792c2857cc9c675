"""A workflow that reports progress and logs, for the CLI's progress tests."""

from __future__ import annotations

import time

import kaon


@kaon.step
def crunch(batches: int, pause: float) -> int:
    ctx = kaon.context()
    for done in range(1, batches + 1):
        time.sleep(pause)
        ctx.log(f"batch {done} done")
        ctx.progress(done, batches)
    return batches


@kaon.step
def item(x: int) -> int:
    return x + 1


@kaon.workflow
def crunching(batches: int = 4, pause: float = 0.0) -> None:
    crunch(batches, pause)
    with kaon.foreach([1, 2, 3], id="each") as each:
        item(each.item)
