"""kaon.start: a run steered from Python (wait, kill, skip, restart, resume, breakpoints)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import kaon
from kaon.client import RunHandle


@kaon.step
def numbers(n: int) -> list[int]:
    kaon.context().log(f"making {n}")
    return list(range(n))


@kaon.step
def square(x: int) -> int:
    kaon.context().metric("x", x)
    return x * x


@kaon.step
def total(values: list[int], extra: int = 0) -> int:
    return sum(values) + extra


@kaon.step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@kaon.step
def fails_unless(flag: str) -> str:
    if not Path(flag).exists():
        raise RuntimeError("no flag")
    return "ok"


@kaon.workflow(name="steered")
def steered(n: int = 4, extra: int = 0) -> None:
    items = numbers(n)
    with kaon.foreach(items, id="each") as each:
        square(each.item)
    total(each, extra=extra)


@kaon.workflow(name="sleepy")
def sleepy(seconds: float = 30.0) -> None:
    nap(seconds)


@kaon.workflow(name="flaky_flow")
def flaky_flow(flag: str = "") -> None:
    fails_unless(flag)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "home"


def test_start_returns_at_once_and_wait_gives_the_outcome(home: Path) -> None:
    handle = kaon.start(steered, home=home, n=3)
    assert isinstance(handle, RunHandle)
    assert handle.wait(timeout=60) == "succeeded"
    assert handle.status == "succeeded"
    assert handle.output("total") == 5
    assert [line.text for line in handle.logs("numbers")] == ["making 3"]
    assert any(line.text == "making 3" for line in handle.logs())


def test_wait_times_out_and_kill_cancels(home: Path) -> None:
    handle = kaon.start(sleepy, home=home, seconds=30.0)
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.3)
    assert handle.kill() == "cancelled"
    assert handle.wait(timeout=10) == "cancelled"


def test_wait_async(home: Path) -> None:
    handle = kaon.start(steered, home=home, n=2)
    assert asyncio.run(handle.wait_async(timeout=60)) == "succeeded"


def test_restart_after_a_fix(home: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    handle = kaon.start(flaky_flow, home=home, flag=str(flag))
    assert handle.wait(timeout=60) == "failed"
    flag.write_text("fixed")
    assert handle.restart().wait(timeout=60) == "succeeded"
    assert handle.output("fails_unless") == "ok"


def test_breakpoint_inspect_change_and_resume(home: Path) -> None:
    handle = kaon.start(steered, home=home, breakpoints=["total"], n=3)
    assert handle.wait(timeout=60) == "paused"
    [held] = handle.paused()
    assert (held.path, held.moment) == ("total", "before")
    assert handle.load(held.inputs["values"]) == [0, 1, 4]
    handle.resume(params={"extra": 100})
    assert handle.wait(timeout=60) == "succeeded"
    assert handle.output("total") == 105


def test_paused_inputs_of_a_step_after_a_long_feed(home: Path) -> None:
    # Over 1,000 events before the pause: the held step's inputs still show.
    handle = kaon.start(steered, home=home, breakpoints=["total"], n=300)
    assert handle.wait(timeout=60) == "paused"
    [held] = handle.paused()
    assert held.path == "total" and len(handle.load(held.inputs["values"])) == 300
    handle.kill()


def test_skip_a_paused_step(home: Path) -> None:
    handle = kaon.start(steered, home=home, breakpoints=["total"], n=3)
    assert handle.wait(timeout=60) == "paused"
    handle.skip("total", -1)
    assert handle.wait(timeout=60) == "succeeded"
    assert handle.steps[-1].status == "skipped"


def test_stop_then_resume_drives_the_run_again(home: Path) -> None:
    handle = kaon.start(steered, home=home, breakpoints=["each.square:after"], n=2)
    assert handle.wait(timeout=60) == "paused"
    handle.stop()  # the engine goes away; the run stays paused, in the store
    assert handle.status == "paused"
    handle.resume()  # continue, and drive it again in a new engine
    assert handle.wait(timeout=60) == "succeeded"
    assert handle.output("total") == 1
