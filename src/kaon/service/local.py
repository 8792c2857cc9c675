"""The service layer over a local store: every operation the CLI (and later the API) offers.

The service owns the backends it opens (store, artifact store, executor) and closes them.
Driving a run happens in this process through :meth:`LocalService.execute`; the other
operations only read or change recorded state, or send commands to the engine that holds a
run.
"""

from __future__ import annotations

import pathlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kaon.artifacts import open_artifact_store
from kaon.artifacts.base import ArtifactStore
from kaon.dsl.loader import load_workflow
from kaon.engine import operations
from kaon.engine.engine import Engine, Listener, owner_is_dead
from kaon.engine.targets import check_step_target
from kaon.errors import (
    ConfigurationError,
    ForeignDatabaseError,
    InvalidActionError,
    NotFoundError,
    StoreNotFoundError,
)
from kaon.model.breakpoints import BREAK_AFTER, BREAK_AFTER_CACHED, check_breakpoints
from kaon.model.cache_policy import CachePolicy, check_cache_policy
from kaon.model.expressions import configure_budget
from kaon.model.params import bind_params, json_problem, rebind_params
from kaon.model.specs import WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import ValueRef, decode_outputs
from kaon.service.limits import RUN_METRICS
from kaon.service.settings import EXECUTORS, Settings, expression_budget
from kaon.service.stopper import Stopper
from kaon.service.views import (
    LogView,
    PausedStepView,
    RunDetail,
    RunView,
    log_view,
    paused_step_view,
    run_view,
    step_view,
)
from kaon.store import open_store
from kaon.store.base import LOCAL_ORIGIN, RunRecord, StateStore, StepRunRecord

LOG_PAGE = 10_000  # log lines read at once
# How long ``follow`` sees an unfinished run held by no engine before it says so (a lease
# lapses 30 s after its engine died; a run made for a server is claimed within a second).
UNHELD_S = 5.0

if TYPE_CHECKING:  # imported when first used: a run does not need it
    from kaon.executors.base import Executor
    from kaon.service.experiments import Experiments
    from kaon.service.remote import Stoppable
    from kaon.service.run_reads import LogWindowView, RunPage, RunReads, StepDetail


AFTER = (BREAK_AFTER, BREAK_AFTER_CACHED)  # reasons of steps held after they ran


@dataclass(frozen=True)
class PausedStep:
    """A step held at a breakpoint: ``moment`` is ``before`` (``inputs`` it would receive)
    or ``after`` (``outputs`` it produced, not yet passed on)."""

    path: str
    moment: str
    inputs: dict[str, ValueRef]
    outputs: dict[str, ValueRef]


def _held(record: RunRecord, now: float) -> bool:
    """Whether an engine holds ``record``: a live lease whose engine is not proven dead
    (its lock file on this host free: a runner killed with -9 before its lease lapses)."""
    if record.owner is None or (record.lease_until or 0.0) <= now:
        return False
    from kaon.engine.liveness import owner_is_dead

    return not owner_is_dead(record.owner, forget=False)


class LocalService:
    """Kaon's operations against the store named by ``settings``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        if self.settings.executor and self.settings.executor not in EXECUTORS:
            raise ConfigurationError(
                f"unknown executor {self.settings.executor!r}; choose one of {', '.join(EXECUTORS)}"
            )
        configure_budget(expression_budget())
        self._store: StateStore | None = None
        self._artifacts: ArtifactStore | None = None
        self._executor: Executor | None = None  # warmed by prepare_execution, not started
        # A server's (kaon.service.bundle_files): stored code paths made this home's.
        self.localize: Callable[[WorkflowSpec], WorkflowSpec] | None = None
        # A server's: a workflow's owner group, which scopes its steps' signals and cache
        # entries in the runs this service drives as it does in the server's engine.
        self.owner_group_of: Callable[[str], str | None] | None = None

    # -- backends ----------------------------------------------------------------------------

    @property
    def store(self) -> StateStore:
        """The state store (opened on first use)."""
        if self._store is None:
            try:
                self._store = open_store(self.settings.store_url, create=self.settings.create_store)
            except ConfigurationError as error:
                source = self.settings.store_source
                if not source or isinstance(error, StoreNotFoundError | ForeignDatabaseError):
                    raise
                raise ConfigurationError(f"{source}: {error}") from error
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (opened on first use)."""
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings.artifacts_url)
        return self._artifacts

    @property
    def experiments(self) -> Experiments:
        """Artifacts, lineage, cache, comparison and garbage collection over these backends."""
        from kaon.service.experiments import Experiments

        return Experiments(self.store, self.artifacts)

    def close(self) -> None:
        """Close the store (and stop an executor warmed for a run that never executed)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- definitions and runs ----------------------------------------------------------------

    def validate(self, target: str) -> WorkflowSpec:
        """Load and validate ``FILE[:WORKFLOW]``. Raises DefinitionError with every problem."""
        return load_workflow(target)

    def create_run(
        self,
        spec: WorkflowSpec,
        params: Mapping[str, Any],
        *,
        from_strings: bool = False,
        source: str = "",
        cache: CachePolicy | None = None,
        breakpoints: Sequence[str] = (),
        priority: int | None = None,
    ) -> RunView:
        """Bind parameters (raising ParameterError) and record a new pending run; ``cache``
        turns lookups off or forces steps (see :mod:`kaon.model.cache_policy`; a forced name
        that is no step raises ParameterError); ``breakpoints`` (``STEP`` or ``STEP:after``,
        see :mod:`kaon.model.breakpoints`) pause it there. ``priority`` orders it among
        runs competing for slots (default: the workflow's, see :mod:`kaon.model.tenancy`).

        The artifact store is opened first: a run is never recorded that could not execute
        for want of it (ConfigurationError for a bad artifact store URL). The run is this
        machine's (:data:`~kaon.store.base.LOCAL_ORIGIN`): a server serving the same store
        never claims it, as it cannot load its files; :meth:`execute` drives it.
        """
        bound = bind_params(spec, params, from_strings=from_strings)
        labels = check_cache_policy(spec, cache).with_labels({})
        labels = check_breakpoints(spec, breakpoints).with_labels(labels)
        _ = self.artifacts
        record = operations.create_run(
            self.store,
            spec,
            bound,
            source=source,
            executor=self.settings.executor,
            labels=labels,
            priority=priority,
            origin=LOCAL_ORIGIN,
        )
        return run_view(record)

    def execute(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Engine], None] | None = None,
        after_event: int = 0,
    ) -> RunStatus:
        """Drive a run to the end in this process (also how a stopped run resumes).

        ``on_engine`` receives the engine before it starts, so a caller can stop it from a
        signal handler; the run then stays running, to be resumed. ``listener`` receives the
        run's events after event ``after_event`` that were committed before this engine
        starts (read from the store: the ``run pending`` of its creation or restart, as a
        server's feed starts with it), then those this engine commits, as it commits them.
        """
        self._check_executor(self.store.get_run(run_id))
        if listener is not None:  # no engine drives the run yet: nothing commits meanwhile
            self._hand_committed(run_id, after_event, listener)
        executor, self._executor = self._executor or self._step_executor(), None
        engine = Engine(
            self.store,
            executor,
            self.artifacts,
            localize=self.localize or self._pushed_code,
            owner_group_of=self.owner_group_of,
        )
        if listener is not None:
            engine.subscribe(listener)
        if on_engine is not None:
            on_engine(engine)
        try:
            engine.start()  # spawn the workers first: they start while the run is loaded
            engine.add_run(run_id)
            return engine.run_until_done(run_id)
        finally:
            engine.close()

    def _hand_committed(self, run_id: str, after_event: int, listener: Listener) -> None:
        """Hand ``listener`` the run's committed events after ``after_event``, in pages."""
        cursor = after_event
        while True:
            events = self.store.events(run_id, after_id=cursor, limit=1000)
            if events:
                listener(events)
                cursor = events[-1].id or cursor
            if len(events) < 1000:
                return

    def _pushed_code(self, spec: WorkflowSpec) -> WorkflowSpec:
        """``spec`` with a pushed version's code paths made this home's (a server's run
        resumed from the command line on the server's home; see
        :mod:`kaon.service.bundle_files`); any other spec as it is."""
        from kaon.service import bundle_files

        if not bundle_files.names_bundles(spec):
            return spec
        from kaon.store.registry import SQLRegistryStore
        from kaon.store.sql import SQLStore

        store = self.store
        if not isinstance(store, SQLStore):
            return spec
        sources = pathlib.Path(self.settings.home).absolute() / "sources"
        return bundle_files.BundleFiles(SQLRegistryStore(store), sources).localize(spec)

    def _check_executor(self, record: RunRecord) -> None:
        """Refuse to resume on another executor a run whose attempts may still be running on
        the one it was started on: a Ray cluster outlives the runner that was killed, and its
        tasks would run again beside their copies (local workers die with their runner)."""
        current = self.settings.executor
        started = record.status in (RunStatus.RUNNING, RunStatus.PAUSED)
        if started and record.executor == "ray" and current != "ray":
            raise InvalidActionError(
                f"run {record.id} was started on the ray executor and its attempts may still "
                f"run on the cluster: resume it there (kaon resume {record.id} --executor ray "
                "--ray-address ADDRESS), not on the " + (current or "process") + " executor"
            )

    def prepare_execution(self) -> None:
        """Create the step executor :meth:`execute` will use and start booting its first
        worker now (see :meth:`kaon.executors.base.Executor.warm`): ``kaon run`` calls this
        before it loads the workflow, so that a worker process is ready, or nearly, when the
        run's first step is. Raises ConfigurationError for a bad executor setting."""
        if self._executor is None:
            self._executor = self._step_executor()
            self._executor.warm()

    def _step_executor(self) -> Executor:
        from kaon.service.sandboxing import create_step_executor

        return create_step_executor(
            self.settings, sandbox_default="off", hide_user_home=False, wait_ready=False
        )

    def restart(
        self,
        run_id: str,
        *,
        from_step: str | None = None,
        by: str = "",
        force: bool = False,
        only: bool = False,
    ) -> RunView:
        """Make a finished run runnable again (then :meth:`execute` it); with ``force`` the
        steps it resets execute without a cache lookup."""
        record = operations.restart_run(
            self.store, run_id, from_path=from_step, by=by, force=force, only=only
        )
        return run_view(record)

    def skip(
        self, run_id: str, path: str, *, output: Any = None, has_output: bool = False, by: str = ""
    ) -> str:
        """Skip a step. Returns ``"command"`` when sent to the engine holding the run,
        ``"queued"`` when the run is active but no engine drives it (the skip is recorded
        as a command the next engine to drive it applies: resume it), or ``"recorded"`` when
        applied to a finished run (restart it to go on)."""
        if has_output and (problem := json_problem(output)) is not None:
            raise InvalidActionError(f"the output to skip {path} with: {problem}")
        record = self.store.get_run(run_id)
        if not record.status.is_terminal:
            check_step_target(self.store, record, path)
            driven = self._driven(record)
            payload: dict[str, Any] = {"path": path}
            if has_output:
                payload["output"] = output
            operations.send_command(self.store, run_id, "skip", payload, by=by)
            return "command" if driven else "queued"
        operations.skip_step(self.store, run_id, path, output=output, has_output=has_output, by=by)
        return "recorded"

    def continue_run(
        self,
        run_id: str,
        *,
        step: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_strings: bool = False,
        by: str = "",
    ) -> RunView:
        """Release a run's steps held at breakpoints (only ``step`` when given), first
        changing ``params`` (merged over the run's, checked by the workflow's types).

        Recorded as a command: the engine holding the run applies it, or the next engine
        that drives it (``kaon continue`` drives it when none does). Raises
        InvalidActionError for a run that is not paused, ParameterError for bad values.
        """
        record = self.store.get_run(run_id)
        if record.status is not RunStatus.PAUSED:
            raise InvalidActionError(f"run {run_id} is {record.status.value}, not paused")
        payload: dict[str, Any] = {}
        if step is not None:
            check_step_target(self.store, record, step, paused=True)
            payload["path"] = step
        if params:
            spec = operations.run_spec(self.store, record)
            payload["params"] = rebind_params(
                spec, record.params, params, from_strings=from_strings
            )
        operations.send_command(self.store, run_id, "continue", payload, by=by)
        return run_view(record)

    def engine_holds(self, run_id: str) -> bool:
        """True when a live engine drives the run (commands reach it without a resume).

        The lease of an engine proven dead is released here, so the next engine claims the
        run at once."""
        return self._driven(self.store.get_run(run_id))

    def _driven(self, record: RunRecord) -> bool:
        """True when a live engine holds ``record``'s run. The proof that its holder died
        (its free lock file, removed as it is taken) is used up when taken, so the lease is
        released with it: the run is then plainly held by no one, for every later check
        and for the next engine, at once."""
        owner = record.owner
        if not owner:
            return False
        if owner_is_dead(owner):
            self.store.release_lease(record.id, owner)
            return False
        return True

    def paused_steps(self, run_id: str, path: str | None = None) -> list[PausedStep]:
        """The steps of a run held at breakpoints (only the one at ``path`` when given): what
        each would receive (before) or produced (after), as references (see
        :mod:`kaon.model.values`). The inputs come from each held step's own ``paused``
        event, however long the run's feed is."""
        if path is not None:
            row = self.store.get_step_run(run_id, path)
            held = [row] if row.status is StepStatus.PAUSED else []
        else:
            held = self.store.step_runs(run_id, all_levels=True, statuses=[StepStatus.PAUSED])
        return [
            PausedStep(
                path=row.path,
                moment="after" if row.reason in AFTER else "before",
                inputs=decode_outputs(self._held_inputs(run_id, row)),
                outputs=decode_outputs(row.outputs) if row.reason in AFTER else {},
            )
            for row in held
        ]

    def paused_views(self, run_id: str, path: str | None = None) -> list[PausedStepView]:
        """The steps a run holds at breakpoints (only the one at ``path`` when given), as
        views: what ``GET /runs/ID/paused`` answers."""
        return [
            paused_step_view(step.path, step.moment, step.inputs, step.outputs)
            for step in self.paused_steps(run_id, path)
        ]

    def _held_inputs(self, run_id: str, row: StepRunRecord) -> dict[str, Any] | None:
        """The inputs the engine recorded when it held ``row`` before it started."""
        if row.reason in AFTER:
            return None
        for event in self.store.step_events(run_id, row.id, kind="step", limit=20):
            if event.data.get("status") == "paused" and "inputs" in event.data:
                return dict(event.data["inputs"])
        return None

    def delete_run(self, run_id: str, *, by: str = "", by_token: str | None = None) -> None:
        """Delete a finished run and every row of it (see :meth:`StateStore.delete_runs`;
        ``kaon gc`` then frees the blobs only it referenced), audited as deleted by ``by``
        (the token ``by_token``, when a token did it).
        Raises NotFoundError for an unknown run, InvalidActionError for an active one,
        LeaseError for one an engine still holds."""
        self.store.get_run(run_id)
        self.store.delete_runs([run_id], by=by, by_token=by_token)

    def kill(
        self, run_id: str, *, step: str | None = None, by: str = "", wait_s: float = 10.0
    ) -> RunView:
        """Cancel a run (or one of its steps): through its engine if one holds it, directly
        otherwise. A step can only be cancelled while an engine drives its run."""
        record = self.store.get_run(run_id)
        if record.status.is_terminal:
            raise InvalidActionError(f"run {run_id} is already {record.status.value}")
        if step is not None:
            check_step_target(self.store, record, step)
            if not self._driven(record):
                raise InvalidActionError(
                    f"run {run_id} is not being driven by an engine: resume it (kaon resume "
                    f"{run_id}) to cancel one step, or kill the run"
                )
            operations.send_command(self.store, run_id, "cancel", {"path": step}, by=by)
            return run_view(record)
        if self._driven(record):
            operations.send_command(self.store, run_id, "kill", {}, by=by)
            deadline = time.time() + wait_s
            while time.time() < deadline:
                record = self.store.get_run(run_id)
                if record.status.is_terminal:
                    return run_view(record)
                time.sleep(0.05)
            record = self.store.get_run(run_id)
            if record.status.is_terminal:
                return run_view(record)
            if self._driven(record):
                raise InvalidActionError(
                    f"the engine holding run {run_id} did not stop it within {wait_s:g}s"
                )
        operations.cancel_run(self.store, run_id, by=by)
        return run_view(self.store.get_run(run_id))

    # -- reading -----------------------------------------------------------------------------

    def resolve_run_id(self, given: str) -> str:
        """The full id of a run named by its id or a unique prefix. Raises NotFoundError."""
        return self.store.resolve_run_id(given)

    def get_run(self, run_id: str) -> RunView:
        """A run's summary."""
        return run_view(self.store.get_run(run_id), time.time())

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
        after: tuple[float, str] | None = None,
    ) -> list[RunView]:
        """Runs, newest first; ``after`` (a run's ``created_at`` and id) starts after that
        run (see :meth:`~kaon.store.base.StateStore.list_runs`)."""
        from kaon.service.run_reads import check_run_list

        check_run_list(status, limit, offset)
        statuses = [RunStatus(status)] if status else None
        now = time.time()
        records = self.store.list_runs(
            workflow=workflow, statuses=statuses, limit=limit, offset=offset, after=after
        )
        return [run_view(r, now) for r in records]

    def run_detail(self, run_id: str, *, all_steps: bool = False) -> RunDetail:
        """A run with its step runs (foreach items and loop iterations summarized unless
        ``all_steps``), their attempts, and its first :data:`RUN_METRICS` metric values
        (``metrics_truncated`` when there are more), as ``GET /runs/{id}`` answers.

        Summarized, the rows, counts and attempts are selected and counted by the store, so
        the cost follows what is shown, not the number of items."""
        record = self.store.get_run(run_id)
        now = time.time()
        if all_steps:
            shown = self.store.step_runs(run_id, all_levels=True)
            counts = Counter((row.kind, row.status) for row in shown)
            frames: dict[int, Counter[StepStatus]] = {}
            for row in shown:
                if row.kind in ("item", "iteration") and row.parent_id is not None:
                    frames.setdefault(row.parent_id, Counter())[row.status] += 1
            found = self.store.attempts(run_id)
        else:
            shown = self.store.summary_step_runs(run_id)
            counts = Counter(self.store.status_counts(run_id))
            frames = {k: Counter(v) for k, v in self.store.frame_counts(run_id).items()}
            found = self.store.attempts_of(run_id, (row.id for row in shown))
        attempts: dict[int, list[Any]] = {}
        for attempt in found:
            attempts.setdefault(attempt.step_run_id, []).append(attempt)
        detail = RunDetail.of(**dict(run_view(record, now)))
        detail.steps = [
            step_view(
                row,
                attempts.get(row.id, []),
                {status.value: n for status, n in frames.get(row.id, Counter()).items()},
                now,
            )
            for row in shown
        ]
        detail.tasks = {
            status.value: n for (kind, status), n in sorted(counts.items()) if kind == "task"
        }
        # The same bounded read as a run's page: paths looked up for the values listed.
        metrics = self.reads.metrics(run_id, limit=RUN_METRICS + 1)
        detail.metrics = metrics[:RUN_METRICS]
        detail.metrics_truncated = len(metrics) > RUN_METRICS
        return detail

    def logs(self, run_id: str, path: str, *, attempt: int | None = None) -> list[LogView]:
        """Log lines of a step run (every attempt, or one).

        Raises NotFoundError for an unknown run or step, or an attempt the step did not make.
        """
        row = self.store.get_step_run(run_id, path)
        if attempt is not None:
            numbers = sorted(a.number for a in self.store.attempts(run_id, row.id))
            if attempt not in numbers:
                made = f"attempts {numbers[0]}..{numbers[-1]}" if numbers else "no attempt"
                raise NotFoundError(
                    f"step {path!r} of run {run_id} has no attempt {attempt} ({made})"
                )
        # Every line, page by page: a step's stored log is bounded (its first megabyte and a
        # note naming the artifact of the whole), but can hold far more lines than one page.
        lines: list[LogView] = []
        after = 0
        while True:
            page = self.store.logs(run_id, row.id, attempt=attempt, after_id=after, limit=LOG_PAGE)
            lines += (log_view(r, path) for r in page)
            if len(page) < LOG_PAGE or page[-1].id is None:
                return lines
            after = page[-1].id

    def step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The raw step run record at ``path``."""
        return self.store.get_step_run(run_id, path)

    def follow(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Stoppable], None] | None = None,
        poll_s: float = 0.2,
        after_event: int = 0,
        on_unheld: Callable[[str], None] | None = None,
    ) -> RunStatus:
        """Follow a run some other process drives (``kaon watch``): hand its committed
        events, oldest first from its start (or after event ``after_event``), to
        ``listener`` until it ends; returns its final status, or RUNNING when stopped early.
        Reads the store's event feed by id, which never skips a row that commits late (see
        :mod:`kaon.store.feed`). When no engine has held the unfinished run for
        :data:`UNHELD_S` (its runner stopped or died, no server serves the store), tells
        ``on_unheld`` once, in a sentence naming how to go on, and keeps following."""
        stopper = Stopper()
        if on_engine is not None:
            on_engine(stopper)
        cursor = after_event
        unheld_since: float | None = None
        while not stopper.stopped:
            record = self.store.get_run(run_id)  # read before the events: none missed
            status = record.status
            while True:
                events = self.store.events(run_id, after_id=cursor, limit=1000)
                if events and listener is not None:
                    listener(events)
                cursor = events[-1].id or cursor if events else cursor
                if len(events) < 1000:
                    break
            if status.is_terminal:
                return status
            now = time.time()
            if _held(record, now):
                unheld_since = None
            elif unheld_since is None:
                unheld_since = now
            elif on_unheld is not None and now - unheld_since >= UNHELD_S:
                verb = "continue" if status is RunStatus.PAUSED else "resume"
                on_unheld(
                    f"run {run_id} is {status.value} but no engine has held it for "
                    f"{now - unheld_since:.0f} s (the process that ran it stopped or died, "
                    f"and no kaon server serves this store): go on with kaon {verb} "
                    f"{run_id}; still watching"
                )
                on_unheld = None
            stopper.wait(poll_s)
        return RunStatus.RUNNING

    def last_event_id(self, run_id: str) -> int:
        """The id of the run's newest committed event (0: none): where a follower that must
        not replay the run's history (a restart's) starts. One index lookup."""
        return self.reads.reads.last_event_id(run_id)

    def last_log_id(self, run_id: str) -> int:
        """The id of the run's newest log line (0: none): where a log tail that must not
        show the run's earlier lines again (a restart's) starts. One index lookup."""
        return self.reads.reads.last_log_id(run_id)

    def log_window(
        self, run_id: str, path: str | None = None, *, after_id: int = 0
    ) -> LogWindowView:
        """A step run's log lines after ``after_id``, oldest first (at most 200); without
        ``path``, every step's (each line with its path)."""
        return self.reads.logs(run_id, path, after_id=after_id)

    # -- bounded reads (cost what they show; see kaon.service.run_reads) ----------------------

    def run_page(
        self,
        run_id: str,
        *,
        all_steps: bool = False,
        limit: int = 1000,
        offset: int = 0,
        metrics_limit: int = RUN_METRICS,
        statuses: tuple[str, ...] = (),
        kind: str | None = None,
        sort: str = "index",
        descending: bool = False,
    ) -> RunPage:
        """The run with one page of its step runs (see :meth:`RunReads.page`)."""
        return self.reads.page(
            run_id,
            all_steps=all_steps,
            limit=limit,
            offset=offset,
            metrics_limit=metrics_limit,
            statuses=statuses,
            kind=kind,
            sort=sort,
            descending=descending,
        )

    def step_detail(self, run_id: str, path: str) -> StepDetail:
        """One step run with attempts, outputs, metrics and cache decision (indexed)."""
        return self.reads.step(run_id, path)

    @property
    def reads(self) -> RunReads:
        """Run summary, pages of children, one step, log windows over this store."""
        from kaon.service.run_reads import RunReads

        return RunReads(self.store)


def run(
    workflow: Any,
    *,
    executor: str = "inline",
    home: str | None = None,
    db: str | None = None,
    no_cache: bool = False,
    force: Sequence[str] = (),
    **params: Any,
) -> RunDetail:
    """Run a workflow from Python (a notebook, a test) and return the finished run's detail.

    ``workflow`` is a ``@kaon.workflow`` object, a :class:`WorkflowSpec`, or a
    ``FILE[:WORKFLOW]`` string. Runs are recorded in the same store as ``kaon run``'s, so
    ``kaon show`` and memoization work across both. ``no_cache`` and ``force`` are
    ``kaon run --no-cache`` and ``--force STEP`` (see :mod:`kaon.model.cache_policy`). Raises
    DefinitionError or ParameterError before anything runs.
    """
    settings = Settings.from_env(home=home, db_url=db, executor=executor)
    with LocalService(settings) as service:
        if isinstance(workflow, str):
            spec = service.validate(workflow)
        elif isinstance(workflow, WorkflowSpec):
            spec = workflow
        else:
            spec = workflow.spec
        cache = CachePolicy(lookup=not no_cache, force=tuple(force))
        created = service.create_run(spec, params, cache=cache)
        service.execute(created.id)
        return service.run_detail(created.id)
