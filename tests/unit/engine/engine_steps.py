"""Step functions for the engine tests (loaded by file path, also in worker processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import kaon.steptypes.context as kctx


def _mark(state: str, name: str) -> int:
    """Append a line to ``state/name`` and return how many lines it has now."""
    path = Path(state) / name
    with path.open("a") as f:
        f.write(f"{os.getpid()} {time.time()}\n")
    return len(path.read_text().splitlines())


def const(value: Any = None, state: str = "", name: str = "") -> Any:
    if state:
        _mark(state, name or "const")
    return value


def add(a: float, b: float = 0, state: str = "", name: str = "") -> float:
    if state:
        _mark(state, name or "add")
    return a + b


def total(values: list[Any]) -> float:
    return float(sum(v for v in values if v is not None))


def pair(x: int) -> dict[str, Any]:
    return {"x": x, "items": list(range(x)), "twice": 2 * x}


def flaky(state: str, name: str, failures: int, error: str = "ValueError") -> str:
    """Fail the first ``failures`` calls with ``error``, then succeed."""
    count = _mark(state, name)
    if count <= failures:
        errors = {"ValueError": ValueError, "KeyError": KeyError, "Reset": ConnectionResetError}
        raise errors[error](f"failure {count}")
    return f"ok after {count}"


def fail_unless(state: str, flag: str) -> str:
    """Fail until the file ``state/flag`` exists."""
    _mark(state, "fail_unless_" + flag)
    if not (Path(state) / flag).exists():
        raise RuntimeError(f"flag {flag} missing")
    return "fixed"


def sleeper(seconds: float, state: str = "", name: str = "") -> float:
    if state:
        _mark(state, (name or "sleeper") + "_start")
    time.sleep(seconds)
    if state:
        _mark(state, (name or "sleeper") + "_end")
    return seconds


def crash_once(state: str) -> str:
    """Kill the worker process on the first call."""
    if _mark(state, "crash_once") == 1:
        os._exit(3)
    return "survived"


def nan_metric() -> int:
    """Report a NaN metric past StepContext.metric's check (as a step type might)."""
    from kaon.model.events import MetricReported

    ctx = kctx.current_context()
    ctx.emit(MetricReported(ctx.key, time.time(), "loss", float("nan"), None))
    ctx.metric("ok", 1.0)
    return 1


def read_flag(state: str, flag: str) -> str:
    """The text of the file ``state/flag`` (data outside the step's inputs)."""
    return (Path(state) / flag).read_text()


def crash_once_after(state: str, seconds: float) -> str:
    """Sleep, then kill the worker process on the first call."""
    time.sleep(seconds)
    return crash_once(state)


def chatty(n: int) -> int:
    ctx = kctx.current_context()
    for i in range(n):
        print(f"line {i}")
        ctx.metric("loss", 1.0 / (i + 1), step=i)
    ctx.progress(1.0, "done")
    return n


def boom() -> None:
    raise ZeroDivisionError("boom in user code")


def score(iteration: int) -> dict[str, Any]:
    return {"iteration": iteration, "stable": iteration >= 2}


def timed(index: int, state: str, seconds: float = 0.05) -> int:
    _mark(state, f"start_{index}")
    time.sleep(seconds)
    _mark(state, f"end_{index}")
    return index


def biglist(n: int, state: str = "", name: str = "") -> list[int]:
    """A list large enough to be stored as a blob, not inline."""
    if state:
        _mark(state, name or "biglist")
    return list(range(n))


def announce(name: str, **params: Any) -> str:
    """Send a signal from inside a step."""
    kctx.current_context().emit_signal(name, **params)
    return name


def fail_keeping(n: int) -> None:
    """Fail, keeping a large partial result (as a notebook step keeps its partial notebook)."""
    from kaon.errors import StepError

    raise StepError("PartialFailure", "gave up half way", outputs={"partial": list(range(n))})


def dates(n: int) -> list[Any]:
    """``n`` datetime.date values: not JSON, so a foreach passes its items by reference."""
    import datetime

    return [datetime.date(2026, 1, 1 + i) for i in range(n)]


def sleep_unless(state: str, flag: str, seconds: float) -> str:
    """Sleep ``seconds`` unless the file ``state/flag`` exists."""
    if not (Path(state) / flag).exists():
        time.sleep(seconds)
    return "done"


def flagged(n: int, ok: bool = True) -> dict[str, Any]:
    """A small flag next to a large blob (a model beside its validation verdict)."""
    return {"ok": ok, "blob": list(range(n)), "regions": ["eu", "us"]}


def untidy() -> int:
    """Print, log and name a metric with a lone surrogate, as an undecodable file name is."""
    ctx = kctx.current_context()
    print("file \udcff.csv")
    ctx.log("log \udcff")
    ctx.metric("loss \udcff", 1.0)
    return 1


def raw_signal() -> int:
    """Send a signal whose params are not JSON, past ``emit_signal``'s own check."""
    from kaon.model.events import SignalEmitted

    ctx = kctx.current_context()
    ctx.emit(SignalEmitted(ctx.key, time.time(), "nan_go", {"x": float("nan")}))
    return 1


def nan_signal() -> int:
    """Ask ``emit_signal`` for a signal whose params are not JSON."""
    kctx.current_context().emit_signal("nan_go", x=float("nan"))
    return 1


class Unsayable(Exception):
    """An exception whose message cannot be read: its ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str exploded")


def unsayable() -> None:
    raise Unsayable()


def wordy(n: int) -> None:
    """Fail with a message of ``n`` characters."""
    raise ValueError("A" * n)


def arrays() -> dict[str, Any]:
    """Outputs an expression cannot read: a numpy array and a DataFrame."""
    import numpy
    import pandas

    return {"arr": numpy.array([1000, 2000]), "small": numpy.arange(3), "df": pandas.DataFrame()}


def scores(n: int) -> dict[str, int]:
    """A dict of ``n`` per-key scores."""
    return {f"k{i}": i for i in range(n)}


def nap_divide(item: int, bad: int, seconds: float) -> float:
    """Sleep ``seconds``, then ``item / (item - bad)`` (fails for item ``bad``)."""
    time.sleep(seconds)
    return item / (item - bad)


def frames(middle: int) -> list[Any]:
    """Two 100-row DataFrames whose row 50 holds ``middle`` (and ``middle + 1``): their
    ``str()`` shows only the first and last rows, so it is the same for any ``middle``."""
    import pandas

    return [
        pandas.DataFrame({"v": [middle + k if i == 50 else 0 for i in range(100)]}) for k in (0, 1)
    ]


def vector(n: int) -> Any:
    """A numpy array of ``n`` ints: a foreach goes over its elements."""
    import numpy

    return numpy.arange(n) * 10


def described(value: Any, state: str = "", name: str = "") -> str:
    """The type and value received, with the foreach item the context holds."""
    if state:
        _mark(state, name or "described")
    item = kctx.current_context().item
    summary = int(value["v"].sum()) if hasattr(value, "columns") else value
    return f"{type(value).__name__} {summary!r} item {type(item).__name__}"


def by_flag(state: str, flag: str, absent: Any, present: Any) -> Any:
    """``present`` once the file ``state/flag`` exists, ``absent`` before."""
    return present if (Path(state) / flag).exists() else absent


def divide_marking(item: int, bad: int, state: str, seconds: float = 0.0) -> float:
    """``item / (item - bad)`` after ``seconds``; item ``bad`` marks ``state/failed`` first."""
    time.sleep(seconds)
    if item == bad:
        _mark(state, "failed")
    return item / (item - bad)


def fail_after(state: str, flag: str, timeout: float = 30.0) -> None:
    """Wait for the file ``state/flag`` (at most ``timeout`` seconds), then fail."""
    deadline = time.monotonic() + timeout
    while not (Path(state) / flag).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    raise RuntimeError(f"failed after {flag}")


def regions() -> Any:
    """A two-row table, as a SQL step's ``result: table`` gives."""
    import pandas

    return pandas.DataFrame({"region": ["eu", "us"], "rows": [3, 4]})


def tuples(n: int = 2) -> dict[str, Any]:
    """Outputs holding tuples: whole, inside a list, inside a dict."""
    return {"shape": (n, 3), "nested": [(1, "a"), {"k": (n,)}], "plain": [n]}


def as_sequence(values: list[Any], kind: str) -> Any:
    """``values`` as a ``tuple`` or as a ``list``."""
    return tuple(values) if kind == "tuple" else list(values)


def typed(value: Any, state: str = "", name: str = "") -> str:
    """The ``repr`` of the value received (its containers' types show in it)."""
    if state:
        _mark(state, name or "typed")
    return repr(value)


def exotic() -> dict[str, Any]:
    """Outputs of types JSON does not have."""
    import dataclasses
    import datetime
    import decimal

    import numpy

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int

    return {
        "bytes": b"\x00x",
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "day": datetime.date(2026, 1, 2),
        "money": decimal.Decimal("1.10"),
        "frozen": frozenset({1, 2}),
        "small": numpy.float32(1.5),
        "count": numpy.int64(3),
        "path": Path("/nowhere/x"),
        "point": Point(1),
        "tuple_of": (b"a", decimal.Decimal("2")),
    }


class Tagged:
    """A workflow-defined class (pickled by value: its file is a workflow's own)."""

    def __init__(self, name: str, tags: set[str]) -> None:
        self.name = name
        self.tags = tags


def tagged(n: int = 3) -> dict[str, Any]:
    """A set of strings and an object of this file's class holding one."""
    words = {f"word{i}" for i in range(n)}
    return {"words": words, "object": Tagged("t", words | {"extra"})}


def sized(value: Any, state: str = "", name: str = "") -> int:
    """How many tags or words ``value`` holds."""
    if state:
        _mark(state, name or "sized")
    return len(value.tags if isinstance(value, Tagged) else value)


def key_order(value: dict[str, Any], state: str = "", name: str = "") -> list[str]:
    """The keys of ``value`` in the order the step sees them."""
    if state:
        _mark(state, name or "key_order")
    return list(value)


def reordered(keys: list[str]) -> dict[str, int]:
    """A mapping with ``keys`` in that order (one ``return`` value: it is not named outputs)."""
    return {"mapping": {key: len(key) for key in keys}}
