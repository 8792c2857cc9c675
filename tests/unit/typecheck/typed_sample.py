"""A workflow file as users write it, type-checked by tests/unit/typecheck/test_public_api_types.py.

Every line marked ``# error`` must be reported by mypy --strict and by pyright; no other line
may be. The file is never imported by the suite (its name does not start with ``test_``).
"""

from __future__ import annotations

from datetime import timedelta

import kaon


@kaon.step
def square(x: int) -> int:
    return x * x


@kaon.step(retry=kaon.Retry(max_attempts=3, backoff="exponential", delay=timedelta(seconds=1)))
def total(values: list[int]) -> int:
    return sum(values)


@kaon.step(timeout=timedelta(minutes=5), on_failure="finish_running", trigger_rule="all_done")
def describe(n: int, label: str = "n") -> str:
    return f"{label}={n}"


@kaon.workflow(timeout=timedelta(hours=1), step_timeout="10m")
def hello(n: int = 10) -> None:
    y: int = square(n)
    text: str = describe(y, label="y")
    total([y, square(3)])
    square.options(id="again", timeout=timedelta(seconds=30))(y)
    describe.options(trigger_rule="none_failed")(n)
    del text


def mistakes() -> None:
    wrong: str = square(3)  # error
    square("3")  # error
    square(3, 4)  # error
    describe(1, colour="red")  # error
    kaon.Retry(backoff="exponentail")  # error
    kaon.Retry(delay=[1])  # error
    kaon.step(on_failure="explode")  # error
    kaon.step(timeout=object())  # error
    square.options(trigger_rule="sometimes")  # error
    square.options(timeout=timedelta(seconds=1))("x")  # error
    hello(n="ten")  # error
    del wrong
