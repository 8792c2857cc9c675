"""The cluster side of the ``ray`` executor: the supervisor actor and the task it submits.

**The supervisor**, a detached, named Ray actor (``kaon-supervisor-<name>`` in namespace
``kaon``), submits the attempts' tasks and owns them, so they outlive the engine's process
(re-attachment). It relays the events the tasks stream while they run, and the ones they
return, to the engine that owns each attempt (an engine is one ``owner`` id), which long-polls
them with :meth:`_Supervisor.drain`. It keeps the final event of the last :data:`FINISHED_KEPT`
attempts, so an attempt that ended while no engine listened is re-delivered on re-attachment.

**Batched dispatch.** The attempts the engine sends together that ask for the same resources
and come from the same code bundle run as *batches*: one Ray task (:func:`_batch_task`) runs
several of them in order (up to :data:`BATCH_MAX`, and never fewer tasks than the cluster has
slots for them), so a sweep of tiny items pays Ray's per-task cost once per batch, not per item.
See :mod:`kaon.executors._ray_attempt` for what a batch does when one of its attempts runs long
(the others are handed back and run in tasks of their own).

**Failing alone.** When a batch's task dies (its worker crashed, its node was lost), the
attempts it had not reported are undetermined: one alone is the culprit and fails
(``WorkerLost``, a platform failure); several are each run again in a task of their own, so
only the culprit fails (what the process executor does with a crashed worker's batch).
Cancelling an attempt of a batch cancels the task only when nothing else is left in it to run
(see :meth:`_Supervisor.cancel`).

Ray's typing is incomplete; the few ignores are here and in :mod:`kaon.executors.ray_executor`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import math
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray  # type: ignore[import-untyped,unused-ignore]
import ray.exceptions  # type: ignore[import-untyped,unused-ignore]

from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey, ErrorInfo, ExecutorEvent, StepFailed

NAMESPACE = "kaon"
FINISHED_KEPT = 10_000  # final events kept for re-attachment, per supervisor
FORCE_AFTER_S = 3.0  # a cancelled task still running after this is killed by force
BATCH_MAX = 16  # attempts one Ray task runs at most
CPUS_FRESH_S = 10.0  # how long the supervisor trusts its view of the cluster's CPUs

Item = tuple[AttemptKey, bytes, str | None, str, dict[str, Any]]  # the request pickled
Entry = tuple[bytes, str | None, str]  # an item as its task gets it: request, digest, folder
Result = tuple[AttemptKey, bytes, bytes]  # an attempt's events but its end, and its end


def pack(events: Sequence[ExecutorEvent]) -> bytes:
    """Events as one blob: the supervisor relays blobs without reading them (cheaper)."""
    return pickle.dumps(list(events), protocol=pickle.HIGHEST_PROTOCOL) if events else b""


def unpack(blob: bytes) -> list[ExecutorEvent]:
    """The events of a :func:`pack` blob."""
    return pickle.loads(blob) if blob else []  # type: ignore[no-any-return]


def lost(key: AttemptKey, exc: BaseException) -> StepFailed:
    """The platform failure of an attempt whose Ray task was lost with ``exc``."""
    kind = type(exc).__name__
    message = f"the Ray task of this attempt was lost ({kind}): {str(exc).strip()[:2000]}"
    return StepFailed(key, time.time(), ErrorInfo("WorkerLost", message, platform=True))


@functools.cache
def _relay(name: str) -> Any:
    """The supervisor actor named ``name``, looked up once per worker process (sending its
    handle with every task costs more than the task)."""
    return ray.get_actor(name, namespace=NAMESPACE)


def _split(events: list[ExecutorEvent]) -> tuple[bytes, bytes]:
    from kaon.executors._ray_attempt import is_final

    return pack([e for e in events if not is_final(e)]), pack([e for e in events if is_final(e)])


@ray.remote(max_retries=0, retry_exceptions=False)  # type: ignore[misc]
def _batch_task(
    batch: int, entries: list[Entry], bundles: dict[str, list[Any]], relay_name: str
) -> list[Result]:
    """A batch of attempts on a Ray worker: their code from the bundle, their events to the
    supervisor (see :mod:`kaon.executors._ray_attempt`). Returns the events not yet sent."""
    from kaon.executors import _ray_attempt, code_bundle

    relay = _relay(relay_name)
    requests: list[TaskRequest] = []
    for blob, digest, folder in entries:
        request: TaskRequest = pickle.loads(blob)
        if digest is not None and digest in bundles:
            local = os.path.join(code_bundle.bundle_root(), digest)
            if not code_bundle.is_materialized(digest):
                local = code_bundle.materialize(digest, ray.get(bundles[digest][0]))
            request = code_bundle.localize(request, folder, local)
        requests.append(request)

    def push(key: AttemptKey, events: list[ExecutorEvent]) -> None:
        relay.push.remote(key, pack(events))

    def report(
        finished: _ray_attempt.Ended,
        handback: list[AttemptKey],
        key: AttemptKey,
        events: list[ExecutorEvent],
    ) -> None:
        ended = [(k, *_split(evs)) for k, evs in finished]
        ray.get(relay.report.remote(batch, ended, handback, key, pack(events)))

    ended = _ray_attempt.run_batch(requests, push, report)
    return [(key, *_split(events)) for key, events in ended]


def _signature(options: Mapping[str, Any]) -> str:
    return repr(sorted(options.items()))


@dataclass(slots=True, eq=False)
class _Batch:
    """One Ray task of the supervisor and the attempts it has not reported yet."""

    id: int
    items: list[Item]
    signature: str  # its options (see _Supervisor._task)
    alone: bool  # a re-run after its batch was lost: a crash now is its own
    pending: set[AttemptKey] = field(default_factory=set)
    current: AttemptKey | None = None  # the attempt streaming (then the only one left)
    ref: Any = None


class _Supervisor:
    """The detached actor that owns the attempts' tasks (see the module docstring).

    An async actor: every method runs on its event loop, so its state needs no lock.
    """

    def __init__(self) -> None:
        self.batches: dict[int, _Batch] = {}
        self.batch_of: dict[AttemptKey, _Batch] = {}
        self.owner_of: dict[AttemptKey, str] = {}
        self.queues: dict[str, list[tuple[AttemptKey, bytes]]] = collections.defaultdict(list)
        self.wakers: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
        self.cancelled: set[AttemptKey] = set()
        self.finished: collections.OrderedDict[AttemptKey, bytes] = collections.OrderedDict()
        self.bundles: dict[str, Any] = {}
        self.tasks: dict[str, Any] = {}
        self.live: collections.Counter[str] = collections.Counter()  # tasks by their options
        self.ids = itertools.count(1)
        self.cpus = 1.0
        self.cpus_at = -CPUS_FRESH_S
        self.name = ""

    def ping(self) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        """What the supervisor holds (for operators and tests)."""
        return {
            "tasks": len(self.batches),
            "attempts": len(self.batch_of),
            "cancelled": len(self.cancelled),
            "finished_kept": len(self.finished),
        }

    # -- sending ---------------------------------------------------------------------------

    def submit(
        self, owner: str, items: list[Item], bundles: Mapping[str, Mapping[str, bytes]]
    ) -> None:
        if not self.name:
            self.name = ray.get_runtime_context().get_actor_name() or ""
        for name, files in bundles.items():
            if name not in self.bundles:
                self.bundles[name] = ray.put(dict(files))  # owned here: outlives the engine
        groups: dict[tuple[str, str | None], list[Item]] = {}
        for item in items:
            key, _, digest, _, options = item
            self.owner_of[key] = owner
            if digest is not None and digest not in self.bundles:
                self._end(key, b"", pack([lost(key, LookupError(f"code bundle {digest} unknown"))]))
                continue
            groups.setdefault((_signature(options), digest), []).append(item)
        for (signature, _), group in groups.items():
            idle = self._slots(group[0]) - self.live[signature]  # slots with no task of ours
            count = max(math.ceil(len(group) / BATCH_MAX), min(len(group), idle))
            size = math.ceil(len(group) / count)
            for start in range(0, len(group), size):
                self._launch(group[start : start + size], alone=False)

    def _slots(self, item: Item) -> int:
        """How many tasks asking what ``item`` asks the cluster runs at once (about)."""
        now = time.monotonic()
        if now - self.cpus_at > CPUS_FRESH_S:
            with contextlib.suppress(Exception):
                self.cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call,unused-ignore]
            self.cpus_at = now
        need = float(item[4].get("num_cpus", 1.0))
        return max(1, int(self.cpus / need)) if need > 0 else BATCH_MAX

    def _launch(self, items: list[Item], alone: bool) -> None:
        signature = _signature(items[0][4])
        batch = _Batch(next(self.ids), items, signature, alone, {item[0] for item in items})
        digest = items[0][2]
        bundles = {digest: [self.bundles[digest]]} if digest is not None else {}
        entries = [(blob, dig, folder) for _, blob, dig, folder, _ in items]
        batch.ref = self._task(signature, items[0][4]).remote(batch.id, entries, bundles, self.name)
        self.batches[batch.id] = batch
        self.live[signature] += 1
        for key in batch.pending:
            self.batch_of[key] = batch
        asyncio.get_running_loop().create_task(self._watch(batch))

    def _again(self, batch: _Batch, keys: Sequence[AttemptKey]) -> None:
        """Run ``keys`` of ``batch`` again, each in a task of its own (unless cancelled)."""
        for item in batch.items:
            key = item[0]
            if key not in keys:
                continue
            if key in self.cancelled:
                self._drop(key)
            else:
                self._launch([item], alone=True)

    def _task(self, signature: str, options: dict[str, Any]) -> Any:
        """The batch task with ``options`` (Ray's ``.options()`` is slow: built once each)."""
        task = self.tasks.get(signature)
        if task is None:
            task = self.tasks[signature] = _batch_task.options(**options)
        return task

    # -- results ---------------------------------------------------------------------------

    async def _watch(self, batch: _Batch) -> None:
        results: list[Result] = []
        error: BaseException | None = None
        try:
            results = await batch.ref
        except ray.exceptions.TaskCancelledError as exc:
            error = exc
        except Exception as exc:  # worker or node died, object lost, Kaon's wrapper failed
            error = exc
        finally:
            self.batches.pop(batch.id, None)
            self.live[batch.signature] -= 1
        for key, rest, final in results:
            if key in batch.pending:
                batch.pending.discard(key)
                self._end(key, rest, final)
        left = []
        for key in batch.pending:
            if self.batch_of.get(key) is not batch:
                continue
            if key in self.cancelled:
                self._drop(key)
            else:
                left.append(key)
        if not left:
            return
        if error is None:  # cannot happen: a task returns every attempt it was given
            error = RuntimeError("the task ended without a result")
        if isinstance(error, ray.exceptions.TaskCancelledError) or (
            len(left) > 1 and not batch.alone
        ):
            self._again(batch, left)  # not run, or which one crashed is unknown
        else:
            for key in left:
                self._end(key, b"", pack([lost(key, error)]))

    def _end(self, key: AttemptKey, rest: bytes, final: bytes) -> None:
        """Attempt ``key`` ended: deliver its last events to its owner and keep its end."""
        self.batch_of.pop(key, None)
        if key in self.cancelled:
            self._drop(key)
            return
        self._deliver(key, rest)
        self._deliver(key, final)
        if final:
            self.finished[key] = final
            while len(self.finished) > FINISHED_KEPT:
                self.finished.popitem(last=False)
        self.owner_of.pop(key, None)

    def _drop(self, key: AttemptKey) -> None:
        """Forget cancelled attempt ``key`` (nothing of it is delivered)."""
        self.batch_of.pop(key, None)
        self.cancelled.discard(key)
        self.owner_of.pop(key, None)

    def _deliver(self, key: AttemptKey, blob: bytes) -> None:
        owner = self.owner_of.get(key)
        if owner is None or not blob or key in self.cancelled:
            return
        self.queues[owner].append((key, blob))
        self.wakers[owner].set()

    def push(self, key: AttemptKey, blob: bytes) -> None:
        """Events of a streaming attempt."""
        self._deliver(key, blob)

    def report(
        self,
        batch_id: int,
        finished: list[Result],
        handback: list[AttemptKey],
        key: AttemptKey,
        blob: bytes,
    ) -> None:
        """A batch's attempt ``key`` runs long: the ones before it ended (``finished``), the
        ones queued behind it (``handback``) run elsewhere; it streams from now on."""
        batch = self.batches.get(batch_id)
        if batch is None:
            return
        for done, rest, final in finished:
            batch.pending.discard(done)
            self._end(done, rest, final)
        batch.pending.difference_update(handback)
        self._again(batch, handback)
        batch.current = key
        self._deliver(key, blob)
        if key in self.cancelled:
            self._cancel_task(batch)

    async def drain(self, owner: str, wait_s: float) -> list[bytes]:
        waker = self.wakers[owner]
        if not self.queues.get(owner):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), wait_s)
        waker.clear()
        return [blob for _, blob in self.queues.pop(owner, [])]

    # -- cancel and re-attach --------------------------------------------------------------

    async def cancel(self, keys: list[AttemptKey]) -> None:
        """Cancel ``keys``. A batch's task is cancelled once nothing else is left to run in
        it: when every attempt left is cancelled, or the one to cancel is running and
        streaming (then it is the only one left). Otherwise the attempt is dropped when its
        turn comes if the ones before it hand it back; if it runs and ends within
        :data:`~kaon.executors._ray_attempt.STREAM_DELAY_S`, its events are dropped; if it
        runs longer, its task is cancelled when it starts streaming (:meth:`report`)."""
        for key in keys:
            batch = self.batch_of.get(key)
            if batch is None or batch.id not in self.batches:
                continue
            self.cancelled.add(key)
            if batch.current == key or batch.pending <= self.cancelled:
                self._cancel_task(batch)

    def _cancel_task(self, batch: _Batch) -> None:
        ray.cancel(batch.ref)
        asyncio.get_running_loop().create_task(self._force(batch))

    async def _force(self, batch: _Batch) -> None:
        await asyncio.sleep(FORCE_AFTER_S)
        if batch.id in self.batches:
            with contextlib.suppress(Exception):
                ray.cancel(batch.ref, force=True)

    def reattach(self, owner: str, keys: list[AttemptKey]) -> list[AttemptKey]:
        found = []
        for key in keys:
            if key in self.batch_of and key not in self.cancelled:
                previous = self.owner_of.get(key)
                self.owner_of[key] = owner
                if previous is not None and previous != owner:
                    self._move_queued(previous, owner, key)
                found.append(key)
            elif key in self.finished:
                self.owner_of[key] = owner
                self._deliver(key, self.finished[key])
                self.owner_of.pop(key, None)
                found.append(key)
        return found

    def _move_queued(self, previous: str, owner: str, key: AttemptKey) -> None:
        queue = self.queues.get(previous, [])
        moving = [entry for entry in queue if entry[0] == key]
        if moving:
            self.queues[previous] = [entry for entry in queue if entry[0] != key]
            self.queues[owner].extend(moving)
            self.wakers[owner].set()


SupervisorActor = ray.remote(_Supervisor)
