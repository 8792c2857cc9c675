"""A step that prints more than an attempt's log budget."""

from __future__ import annotations

import kaon


@kaon.step
def chatty(lines: int) -> int:
    for number in range(lines):
        print(f"line {number:06d} " + "x" * 90)
    return lines


@kaon.workflow
def noisy(lines: int = 15000) -> None:
    chatty(lines)


@kaon.step
def blank(lines: int) -> int:
    print("\n" * lines, end="")
    return lines


@kaon.workflow
def blanks(lines: int = 100_000) -> None:
    blank(lines)
