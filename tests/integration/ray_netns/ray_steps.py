"""Step functions of the Ray checks (loaded by file, so they reach workers in a bundle)."""

from __future__ import annotations

import os
import time
from typing import Any


def assigned() -> dict[str, Any]:
    """What Ray gave the task running this step, and where its code came from."""
    import ray

    return {
        "resources": dict(ray.get_runtime_context().get_assigned_resources()),
        "file": __file__,
    }


def slow(seconds: float, marker: str) -> str:
    """Append a line to ``marker`` when starting (to count executions), then sleep."""
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "done"


def where() -> str:
    """The node this ran on."""
    import ray

    return str(ray.get_runtime_context().get_node_id())
