"""A cacheable step that prints."""

from __future__ import annotations

import kaon


@kaon.step(cache=True)
def loud(n: int) -> int:
    print(f"loading {n} rows")
    return n


@kaon.workflow
def noisy(n: int = 3) -> None:
    loud(n)
