"""Writers of one SQLite file take turns on an OS lock: across processes (forked ones too)
and threads, one at a time, each woken as soon as the turn is free."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from kaon.store import open_store
from kaon.store._writers import WriterQueue


def _hold(database: str, log: str, hold_s: float) -> None:
    with WriterQueue.of(database).turn():
        with open(log, "a") as out:
            out.write(f"{time.monotonic()} in\n")
        time.sleep(hold_s)
        with open(log, "a") as out:
            out.write(f"{time.monotonic()} out\n")


def test_forked_processes_and_threads_take_turns(tmp_path: Path) -> None:
    database, log = str(tmp_path / "kaon.db"), str(tmp_path / "log")
    open_store(f"sqlite:///{database}").close()  # the parent opened the queue's file first
    with WriterQueue.of(database).turn():
        pass
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_hold, args=(database, log, 0.05)) for _ in range(3)]
    threads = [threading.Thread(target=_hold, args=(database, log, 0.05)) for _ in range(3)]
    for worker in [*workers, *threads]:
        worker.start()
    for worker in [*workers, *threads]:
        worker.join(30)
    marks = [line.split()[1] for line in sorted(Path(log).read_text().splitlines())]
    assert marks == ["in", "out"] * 6  # never two writers inside at once


def test_a_thread_may_reenter_its_turn(tmp_path: Path) -> None:
    queue = WriterQueue.of(str(tmp_path / "kaon.db"))
    with queue.turn(), queue.turn():
        pass
    entered = threading.Event()

    def other() -> None:
        with queue.turn():
            entered.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert entered.is_set()  # the turn was left whole
