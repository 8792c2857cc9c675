"""Fenced leases and fair claiming, driven through real engines on one SQLite store."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from conftest import Harness, flow, task

from kaon.engine.engine import Engine
from kaon.engine.liveness import new_owner
from kaon.errors import FencingError, LeaseError, StoreUnavailableError
from kaon.executors import create_executor
from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, WriteBatch
from kaon.triggers import strategies


def _engine(h: Harness, **options: float) -> Engine:
    return Engine(h.store, create_executor("inline", workers=4), h.artifacts, **options)


@pytest.mark.parametrize("noticed_by", ["renewal", "write"])
def test_a_paused_engine_is_fenced_out_and_lets_go(inline: Harness, noticed_by: str) -> None:
    """Engine A stops turning past its lease, as under SIGSTOP; B takes the run over; A's
    late results are refused (by its periodic renewal or by the fenced write of the turn
    itself), A lets go and `run_until_done` raises instead of looping; no attempt flips
    from lost back to succeeded."""
    spec = flow(task("slow", "sleeper", inputs={"seconds": 1.0, "state": str(inline.state)}))
    run_id = inline.create(spec)
    paused = _engine(inline, lease_ttl=0.5)
    paused.start()
    paused.add_run(run_id)
    paused.turn(max_wait=0.05)  # the attempt is recorded and started
    if noticed_by == "write":
        paused._next_renew = float("inf")
    time.sleep(0.7)  # "SIGSTOP": no turn, no renewal, the lease expires
    taker = _engine(inline)
    taker.add_run(run_id)
    winner: list[RunStatus] = []
    thread = threading.Thread(target=lambda: winner.append(taker.run_until_done(run_id)))
    thread.start()
    guard = threading.Timer(15, paused.stop)
    guard.start()
    try:
        with pytest.raises(FencingError, match=run_id):
            paused.run_until_done(run_id)  # "SIGCONT": its step finished meanwhile
    finally:
        guard.cancel()
        paused.close()
    thread.join(15)
    taker.close()
    assert winner == [RunStatus.SUCCEEDED]
    assert run_id not in paused.runs and run_id in paused.lost
    row = inline.store.get_step_run(run_id, "slow")
    assert [a.status for a in inline.store.attempts(run_id, row.id)] == ["lost", "succeeded"]
    assert inline.store.get_run(run_id).lease_epoch == 2


def test_renewal_notices_a_takeover_and_cancels_the_attempts(inline: Harness) -> None:
    spec = flow(task("slow", "sleeper", inputs={"seconds": 3.0}))
    run_id = inline.create(spec)
    first = _engine(inline, lease_ttl=0.3)
    first.start()
    first.add_run(run_id)
    first.turn(max_wait=0.05)
    time.sleep(0.4)
    second = _engine(inline)
    second.add_run(run_id)
    deadline = time.monotonic() + 5
    while run_id in first.runs and time.monotonic() < deadline:
        first.turn(max_wait=0.05)
    assert run_id not in first.runs
    assert isinstance(first.lost[run_id], FencingError)
    first.close()
    second.close()


def test_an_invisible_pid_does_not_make_an_owner_dead(inline: Harness) -> None:
    """Replicas in separate PID namespaces cannot see each other's PIDs: a lease held by an
    engine of this host name whose PID is not visible is still held until it expires."""
    run_id = inline.create(flow(task("a", "const")))
    stranger = f"{socket.gethostname()}:999999999:0123abcd"
    assert inline.store.acquire_lease(run_id, stranger, 30.0) is not None
    engine = inline.engine()
    with pytest.raises(LeaseError, match="being run by"):
        engine.add_run(run_id)
    engine.close()


def test_a_dead_engine_of_this_host_is_taken_over_at_once(inline: Harness) -> None:
    run_id, _owner, holder = _leased_by_another_engine(inline, "-crashed")
    engine = inline.engine()
    with pytest.raises(LeaseError):  # alive (or stopped): its lease holds
        engine.add_run(run_id)
    engine.close()
    holder.kill()  # kill -9: no lease released, the kernel drops the lock
    holder.wait(10)
    holder.stdout.close()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED


def test_an_engine_that_could_not_release_its_leases_is_proven_dead_at_once(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that stops while its store fails (a full disk, PostgreSQL down; the
    runner stopped by Ctrl-C or SIGTERM then) cannot release its leases. Its lock file used
    to be removed all the same, so nothing could prove it dead any more: `kaon resume`
    refused ("being run by ...; kill it or wait") until the lease expired, with no process
    left to kill. The file stays, unlocked, and the run is taken over at once."""
    spec = flow(task("a", "sleeper", inputs={"seconds": 0.3, "state": str(inline.state)}))
    run_id = inline.create(spec)
    first = inline.engine()
    first.start()
    first.add_run(run_id)
    first.turn(max_wait=0.05)

    def failing(*args: object, **kwargs: object) -> None:
        raise StoreUnavailableError("store: writing failed: database or disk is full")

    monkeypatch.setattr(inline.store, "release_lease", failing)
    first.close()
    monkeypatch.undo()
    holder = inline.store.get_run(run_id)
    assert holder.owner == first.owner and holder.status is RunStatus.RUNNING
    assert first._lock.path.exists()  # the proof, unlocked (checking it would consume it)
    started = time.monotonic()
    assert inline.drive(run_id, timeout=20) is RunStatus.SUCCEEDED
    assert time.monotonic() - started < 10  # not after the lease's 30 s


def test_an_engine_that_released_its_leases_leaves_no_lock_file(inline: Harness) -> None:
    run_id = inline.create(flow(task("a", "const", inputs={"value": 3})))
    engine = inline.engine()
    engine.start()
    engine.add_run(run_id)
    path = engine._lock.path
    assert path.exists()
    engine.close()
    assert not path.exists()


def test_a_serving_engine_takes_a_dead_engines_runs_at_once(inline: Harness) -> None:
    # kill -9 of a server's engine process: the restarted server's claim waited out the
    # dead engine's leases (30 s by default) although its free lock file proved it dead.
    run_id, _owner, holder = _leased_by_another_engine(inline, "-crashed")
    holder.kill()
    holder.wait(10)
    holder.stdout.close()
    started = time.monotonic()
    _serve_until_done(inline, [run_id], None, 10, within_s=10.0)
    assert inline.store.get_run(run_id).status is RunStatus.SUCCEEDED
    assert time.monotonic() - started < 10.0


def test_a_serving_engine_leaves_a_live_engines_runs_alone(inline: Harness) -> None:
    run_id, owner, holder = _leased_by_another_engine(inline, "-alive")
    try:
        epoch = inline.store.get_run(run_id).lease_epoch
        _serve_until_done(inline, [run_id], None, 10, within_s=1.0)
        record = inline.store.get_run(run_id)
        assert record.owner == owner and record.lease_epoch == epoch
        assert record.status is RunStatus.PENDING
    finally:
        holder.kill()
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()


def _leased_by_another_engine(h: Harness, suffix: str) -> tuple[str, str, subprocess.Popen[str]]:
    """A new run leased by an engine identity whose lock file another process holds (the
    engine lives until that process is killed): ``(run id, owner, the process)``."""
    run_id = h.create(flow(task("a", "const", inputs={"value": 3})))
    owner = new_owner() + suffix
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, owner], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert h.store.acquire_lease(run_id, owner, 60.0) is not None
    return run_id, owner, holder


_HOLD_LOCK = """
import sys, time
from kaon.engine.liveness import EngineLock
lock = EngineLock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


# -- fair claiming ---------------------------------------------------------------------------


def _create_pending(h: Harness, n: int, seconds: float = 0.05) -> list[str]:
    ids = []
    for i in range(n):
        run_id = h.create(flow(task("a", "sleeper", inputs={"seconds": seconds}), name="wf"))
        # distinct, ordered creation times, not in id order
        batch = WriteBatch()
        batch.update_run(run_id, created_at=1000.0 + i)
        h.store.write(batch)
        ids.append(run_id)
    return ids


def _serve_until_done(
    h: Harness,
    ids: list[str],
    admit: Callable[[RunRecord], bool] | None,
    max_runs: int,
    within_s: float = 60.0,
) -> None:
    engine = h.engine()
    thread = threading.Thread(
        target=engine.serve,
        kwargs={"admit": admit, "max_runs": max_runs, "claim_every_s": 0.02},
    )
    thread.start()
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            if all(h.store.get_run(i).status.is_terminal for i in ids):
                break
            time.sleep(0.05)
    finally:
        engine.stop()
        thread.join(10)
        engine.close()


def _start_order(h: Harness, ids: list[str]) -> list[int]:
    started = [(h.store.get_run(i).started_at or float("inf"), n) for n, i in enumerate(ids)]
    return [n for _at, n in sorted(started)]


def _strategy(name: str) -> Callable[[RunRecord], bool]:
    def admit(run: RunRecord) -> bool:
        return strategies.admit(
            harness_store[0], run, properties=lambda _s, _n: {"run_strategy": name}
        )

    return admit


harness_store: list[object] = []


@pytest.fixture(autouse=True)
def _store_of(inline: Harness) -> None:
    harness_store[:] = [inline.store]


def test_sequential_runs_start_in_creation_order_with_a_small_hold_limit(inline: Harness) -> None:
    ids = _create_pending(inline, 5)
    _serve_until_done(inline, ids, _strategy("sequential"), max_runs=2)
    assert [inline.store.get_run(i).status for i in ids] == [RunStatus.SUCCEEDED] * 5
    assert _start_order(inline, ids) == [0, 1, 2, 3, 4]


def test_parallel_runs_start_in_creation_order(inline: Harness) -> None:
    ids = _create_pending(inline, 5, seconds=0.2)
    _serve_until_done(inline, ids, _strategy("parallel"), max_runs=2)
    assert _start_order(inline, ids) == [0, 1, 2, 3, 4]


def test_a_backlog_larger_than_the_claim_page_starts_its_oldest_first(inline: Harness) -> None:
    ids = _create_pending(inline, 12, seconds=0.0)
    _serve_until_done(inline, ids, None, max_runs=1)
    assert [inline.store.get_run(i).status for i in ids] == [RunStatus.SUCCEEDED] * 12
    assert _start_order(inline, ids) == list(range(12))


class _FenceRecorder:
    """Wraps an executor and records the deadlines the engine publishes to it."""

    def __init__(self) -> None:
        self.inner = create_executor("inline", workers=2)
        self.deadlines: list[tuple[float, float | None]] = []  # (when, deadline)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def fence(self, deadline: float | None) -> None:
        self.deadlines.append((time.monotonic(), deadline))


def test_workers_get_a_deadline_that_renewals_move_and_release_clears(inline: Harness) -> None:
    """The engine publishes to its executor when its attempts must have stopped if no
    renewal comes (3/4 of the lease after the oldest renewal, before a takeover is possible);
    each renewal moves it; holding no run clears it."""
    run_id = inline.create(flow(task("slow", "sleeper", inputs={"seconds": 0.6})))
    recorder = _FenceRecorder()
    engine = Engine(inline.store, recorder, inline.artifacts, lease_ttl=0.6)  # type: ignore[arg-type]
    engine.start()
    before = time.monotonic()
    engine.add_run(run_id)
    when, first = recorder.deadlines[0]
    assert first is not None and before <= first - 0.45 <= when
    assert engine.run_until_done(run_id) is RunStatus.SUCCEEDED
    engine.close()
    published = [d for _, d in recorder.deadlines]
    assert published[-1] is None  # no run held: no deadline
    moved = [d for d in published[1:-1] if d is not None]
    assert moved and all(b > a for a, b in zip([first, *moved], moved, strict=False))
