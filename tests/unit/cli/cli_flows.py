"""Workflows for the CLI tests."""

from __future__ import annotations

import kaon


@kaon.step
def numbers(n: int) -> list[int]:
    print(f"making {n} numbers")
    return list(range(n))


@kaon.step
def square(x: int) -> int:
    kaon.context().metric("x", x)
    return x * x


@kaon.step
def total(values: list[int]) -> int:
    return sum(values)


@kaon.step
def explode(flag: bool) -> int:
    if flag:
        raise RuntimeError("asked to explode")
    return 7


@kaon.workflow
def squares(n: int = 4) -> None:
    items = numbers(n)
    with kaon.foreach(items, concurrency=2, id="each") as each:
        square(each.item)
    total(each)


@kaon.workflow
def fragile(flag: bool = True) -> None:
    result = explode(flag)
    total.options(id="after")([result])
