"""A workflow for the re-attachment check: a slow step, then a quick one."""

from __future__ import annotations

from ray_steps import slow

import kaon


@kaon.step
def long_step(seconds: float, marker: str) -> str:
    return slow(seconds, marker)


@kaon.step
def after(value: str) -> str:
    return value + "!"


@kaon.workflow(name="reattach")
def reattach(marker: str, seconds: float = 8.0) -> None:
    """One long attempt (killed engine mid-way), then a successor."""
    after(long_step(seconds, marker))
