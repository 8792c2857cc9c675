"""Step functions for the executor contract suite.

Loaded by file path through the python step type (``{"file": ..., "function": ...}``), so
that worker processes can load them too. Not a test module.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import kaon


class DataError(Exception):
    """A user-defined error type."""


def noop() -> None:
    return None


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b, "product": a * b}


def square(x: int) -> int:
    return x * x


def describe(value: Any) -> dict[str, Any]:
    return {"type": type(value).__name__, "items": sorted(value)}


def _check(message: str) -> None:
    raise ValueError(message)


def fail(message: str) -> None:
    _check(message)


def fail_custom() -> None:
    raise DataError("rows are missing")


def chatty() -> str:
    print("first line")
    print("partial", end="")
    print(" joined")
    sys.stderr.write("to stderr\n")
    print("no newline at the end", end="")
    return "done"


def report() -> None:
    ctx = kaon.context()
    ctx.metric("loss", 0.25, step=3)
    ctx.progress(0.5, "halfway")
    ctx.log("hello from the step")


def facts() -> dict[str, Any]:
    ctx = kaon.context()
    return {
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
        "step": ctx.step,
        "workflow": ctx.workflow,
        "item": ctx.item,
        "index": ctx.index,
        "iteration": ctx.iteration,
        "params": dict(ctx.params),
    }


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def exit_hard(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def unstorable() -> dict[str, Any]:
    return {"fine": 1, "lock": threading.Lock()}


def pid() -> int:
    return os.getpid()
