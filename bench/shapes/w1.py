"""W1: a chain of 100 steps, each returning the previous value + 1 (values passed)."""

import kaon

CHAIN = 100


@kaon.step
def start() -> int:
    return 0


@kaon.step
def add_one(x: int) -> int:
    return x + 1


@kaon.workflow
def w1() -> None:
    value = start()
    for _ in range(CHAIN - 1):
        value = add_one(value)
