"""A workflow for the crash tests: every step records each time it starts executing."""

from __future__ import annotations

import os
import time

import kaon


def _mark() -> None:
    with open(os.environ["KAON_CRASH_LOG"], "a") as log:
        log.write(kaon.context().step + "\n")


@kaon.step
def start(n: int) -> list[int]:
    _mark()
    time.sleep(0.05)
    return list(range(n))


@kaon.step
def square(i: int) -> int:
    _mark()
    time.sleep(0.04)
    return i * i


@kaon.step
def bump(x: int) -> int:
    _mark()
    time.sleep(0.03)
    return x + 1


@kaon.step
def total(values: list[int]) -> int:
    _mark()
    return sum(values)


@kaon.workflow(name="crashy")
def crashy(n: int = 24) -> None:
    """A chain, a foreach of n items with a two-step body, and a join."""
    items = start(n)
    with kaon.foreach(items, concurrency=3, id="each") as each:
        bump(square(each.item))
    done = total(each)
    bump.options(id="after")(bump.options(id="before_after")(done))
