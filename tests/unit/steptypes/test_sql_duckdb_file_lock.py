"""A DuckDB file another process holds (a sibling foreach item writing the same database,
a DuckDB shell left open) is waited for, not failed with DuckDB's lock conflict; the wait
ends with the attempt's timeout or cancellation."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import StepError
from kaon.model.events import ExecutorEvent, LogLine
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
connection.execute("create table if not exists t(i int)")
print("held", flush=True)
sys.stdin.readline()
connection.close()
print("released", flush=True)
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    path = tmp_path / "shared.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        yield path, holder
    finally:
        holder.kill()
        holder.wait()


def run(events: list[ExecutorEvent], extra: dict[str, Any], **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, events.append, extra=extra)
    return SqlStepType().run(ctx, config, {"i": 7})


def test_a_database_another_process_holds_is_waited_for(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, holder = held

    def release() -> None:
        time.sleep(0.8)
        assert holder.stdin is not None
        with contextlib.suppress(OSError):  # the holder is gone when the step failed at once
            holder.stdin.write("\n")
            holder.stdin.flush()

    releaser = threading.Thread(target=release)
    releaser.start()
    events: list[ExecutorEvent] = []
    total = run(
        events,
        {"timeout_s": 30, "cancel_event": threading.Event()},
        query="insert into t values ($i); select sum(i) from t",
        url=f"duckdb:///{path}",
        result="scalar",
    )
    releaser.join()
    assert total == 7
    logs = [e.text for e in events if isinstance(e, LogLine)]
    assert any(f"waiting for {path}" in line for line in logs), logs


def test_the_wait_ends_with_the_attempts_timeout(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, _ = held
    started = time.monotonic()
    with pytest.raises(StepError) as info:
        run([], {"timeout_s": 0.5}, query="select 1", url=f"duckdb:///{path}")
    assert info.value.error_type == "Timeout"
    assert time.monotonic() - started < 5


def test_the_wait_ends_when_the_attempt_is_cancelled(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, _ = held
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(StepError) as info:
        run([], {"cancel_event": cancel}, query="select 1", url=f"duckdb:///{path}")
    assert info.value.error_type == "Cancelled"
