"""W2: a step producing 500 items, a foreach of 500 (x + 1), a join."""

import kaon

ITEMS = 500


@kaon.step
def produce() -> list[int]:
    return list(range(ITEMS))


@kaon.step
def add_one(x: int) -> int:
    return x + 1


@kaon.step
def total(values: list[int]) -> int:
    return sum(values)


@kaon.workflow
def w2() -> None:
    items = produce()
    with kaon.foreach(items, id="each") as each:
        add_one(each.item)
    total(each)
