"""Kaon from Python: load runs, their outputs, metrics and artifacts into a notebook.

::

    from kaon.client import Client

    c = Client()                                  # KAON_HOME / KAON_DB / KAON_ARTIFACTS
    run = c.run("20261126-1017")                  # an id or a unique prefix
    prep = run.outputs("prepare")                 # {"train": DataFrame, "segments": [...]}
    model = run.output("retrain[0].train_global")  # the "return" output
    run.metrics()                                 # a DataFrame (a list of dicts w/o pandas)
    c.artifact("62c69b8a").load()                 # any blob by hash or prefix

The client reads what runs recorded; it works through the same service layer as the CLI:
with ``url`` (or ``KAON_URL``) it reads a server's runs over HTTP with the same methods and
views (``token``, else ``KAON_TOKEN``; the server's groups and roles apply), and never opens
or creates a local store::

    c = Client(url="https://kaon.example.com", token="...")
    c.run("20261126-1017").output("train")        # the blob is streamed and verified

Every method raises :class:`~kaon.errors.NotFoundError` for an unknown or ambiguous run,
step or artifact, and :class:`~kaon.errors.CorruptArtifactError` rather than return a blob
whose content does not match its hash.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kaon._waiting import WaitsForRun
from kaon.errors import InvalidActionError
from kaon.model.cache_policy import CachePolicy
from kaon.model.specs import WorkflowSpec
from kaon.model.status import RunStatus
from kaon.model.values import RETURN, ArtifactRef, Literal, ValueRef
from kaon.service.background import BackgroundRun
from kaon.service.client import KaonService, open_service
from kaon.service.experiment_views import (
    CompareView,
    ExplainView,
    FetchView,
    LineageView,
    PlotView,
    RunArtifactsView,
)
from kaon.service.limits import COMPARE_ROWS
from kaon.service.local import LocalService, PausedStep
from kaon.service.settings import Settings
from kaon.service.views import LogView, OutputView, RunView, StepRunView

__all__ = ["ArtifactHandle", "Client", "RunHandle", "start"]

if TYPE_CHECKING:  # the HTTP client is imported only for a remote start
    from kaon.remote_run import RemoteRunHandle
    from kaon.service.remote import RemoteService

_NO_VALUE: Any = object()  # skip() without a value


class Client:
    """Access to the runs recorded in a Kaon store, or on a Kaon server.

    ``home``, ``db`` and ``artifacts`` default like the CLI's options: ``KAON_HOME``
    (``./.kaon``), ``KAON_DB`` and ``KAON_ARTIFACTS``. With ``url`` (default: ``KAON_URL``)
    the client reads from that server instead, authenticated by ``token`` (default:
    ``KAON_TOKEN``). Close the client (or use it as a context manager) to release the
    database connection or the HTTP connections.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        db: str | None = None,
        artifacts: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        executor: str | None = None,
    ) -> None:
        settings = Settings.from_env(
            home=str(home) if home is not None else None,
            db_url=db,
            artifact_url=artifacts,
            executor=executor,
        )
        self._service = open_service(url, settings, token=token)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's connections."""
        self._service.close()

    def runs(
        self, workflow: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[RunView]:
        """Runs, newest first, optionally of one workflow and in one status."""
        return self._service.list_runs(workflow=workflow, status=status, limit=limit)

    def run(self, run_id: str) -> RunHandle:
        """The run with this id or unique id prefix."""
        return RunHandle(self._service, self._service.resolve_run_id(run_id))

    def artifact(self, hash_or_prefix: str) -> ArtifactHandle:
        """The recorded artifact with this sha256 or unique prefix."""
        experiments = self._service.experiments
        return ArtifactHandle(self._service, experiments.resolve_artifact(hash_or_prefix))

    def start(
        self,
        workflow: Any,
        *,
        no_cache: bool = False,
        force: Sequence[str] = (),
        breakpoints: Sequence[str] = (),
        **params: Any,
    ) -> RunHandle:
        """Start a run and return at once: an engine drives it in a background thread of this
        process (the client's executor), in the client's store. See :func:`start`."""
        service = self._service
        if not isinstance(service, LocalService):  # a server: its engine drives the run
            on_server = cast("RemoteService", service)
            remote = _start_remote(on_server, workflow, no_cache, force, breakpoints, params)
            return RunHandle(service, remote.id)
        if isinstance(workflow, str):
            spec = service.validate(workflow)
        elif isinstance(workflow, WorkflowSpec):
            spec = workflow
        else:
            spec = workflow.spec
        cache = CachePolicy(lookup=not no_cache, force=tuple(force))
        created = service.create_run(spec, params, cache=cache, breakpoints=breakpoints)
        handle = RunHandle(service, created.id)
        handle._drive()
        return handle

    def compare(self, *run_ids: str, limit: int = COMPARE_ROWS) -> CompareView:
        """Runs side by side: parameters, metrics (per step path, and pooled over a foreach's
        items in ``groups``), step statuses; ``limit`` rows of each list at most."""
        return self._service.experiments.compare(run_ids, limit=limit)

    def plot(
        self,
        *run_ids: str,
        metric: str,
        by: str | None = None,
        step: str | None = None,
        output: str | Path | None = None,
    ) -> PlotView:
        """The series of a metric plot, drawn as a PNG at ``output`` when given."""
        return self._service.experiments.plot(run_ids, metric, by=by, step=step, output=output)


class RunHandle(WaitsForRun):
    """One run: its status, parameters, steps, outputs and metrics (read when asked), and the
    controls of a run: wait, kill, restart, skip, resume (see :func:`start`)."""

    def __init__(self, service: KaonService, run_id: str) -> None:
        self._service = service
        self.id = run_id
        self._driver: BackgroundRun | None = None  # the engine this handle started, if any

    def __repr__(self) -> str:
        return f"<kaon run {self.id} {self.status}>"

    @property
    def view(self) -> RunView:
        """The run's current summary."""
        return self._service.get_run(self.id)

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``paused``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self.view.status

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the run was bound with."""
        return self.view.params

    @property
    def workflow(self) -> str:
        """The workflow's name."""
        return self.view.workflow

    @property
    def steps(self) -> list[StepRunView]:
        """Every step run (foreach items and loop iterations included), in creation order."""
        return self._service.run_detail(self.id, all_steps=True).steps

    def outputs(self, path: str) -> dict[str, Any]:
        """The loaded values of every output of the step at ``path``, by output name."""
        refs = self._service.experiments.step_outputs(self.id, path)
        return {name: self._service.artifacts.get(ref) for name, ref in refs.items()}

    def output(self, path: str, name: str = RETURN) -> Any:
        """The loaded value of one output of the step at ``path``."""
        ref = self._service.experiments.step_output_ref(self.id, path, name)
        return self._service.artifacts.get(ref)

    def artifacts(self) -> RunArtifactsView:
        """Every artifact the run produced or reused, and its inline values."""
        return self._service.experiments.run_artifacts(self.id)

    def explain(self, path: str) -> ExplainView:
        """Why the step at ``path`` was a cache hit or miss."""
        return self._service.experiments.explain(self.id, path)

    def metrics(self) -> Any:
        """Every metric value, one row each (``path, group, item_index, item, name, value,
        step, at, reused_from``): a pandas DataFrame when pandas is installed, else a list of
        dicts. A cached step's values are those of the execution it reused (``reused_from``).
        """
        rows = self._service.experiments.metrics(self.id)
        try:
            import pandas as pd
        except ImportError:
            return rows
        columns = [
            "path",
            "group",
            "item_index",
            "item",
            "name",
            "value",
            "step",
            "at",
            "reused_from",
        ]
        return pd.DataFrame(rows, columns=columns)

    # -- steering --------------------------------------------------------------------------

    def _local(self) -> LocalService:
        """The local service (steering a run on a server goes through
        :class:`~kaon.remote_run.RemoteRunHandle`, from ``kaon.start(url=...)``)."""
        if not isinstance(self._service, LocalService):
            raise InvalidActionError(
                "this handle reads a server; steer its runs with kaon.start(url=...) or the CLI"
            )
        return self._service

    def _check_driver(self) -> None:
        driver = self._driver
        if driver is not None and not driver.alive and driver.error is not None:
            raise driver.error

    def kill(self, *, step: str | None = None) -> str:
        """Cancel the run (or one step of it); returns the run's status."""
        view = self._service.kill(self.id, step=step)
        if step is None and self._driver is not None:
            self._driver.join(10.0)
        return view.status

    def skip(self, step: str, value: Any = _NO_VALUE) -> None:
        """Skip the step at ``step``; downstream steps see ``value`` when given. Returns once
        the engine driving the run has taken the skip."""
        has_output = value is not _NO_VALUE
        output = value if has_output else None
        taken = self._service.skip(self.id, step, output=output, has_output=has_output)
        if taken == "command" and not self._on_server:
            self._commands_taken()

    def restart(
        self, from_step: str | None = None, *, force: bool = False, only: bool = False
    ) -> RunHandle:
        """Run a finished run again (from ``from_step`` and what depends on it, else from its
        failed steps) in a background engine, or the server's engine for a run on a server;
        ``force`` re-executes without cache lookups; ``only`` (with ``from_step``) leaves
        the run's other failed steps failed."""
        if self._driver is not None:
            self._driver.join()
        self._service.restart(self.id, from_step=from_step, force=force, only=only)
        if not self._on_server:
            self._drive()
        return self

    def resume(self, *, step: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        """Go on: continue a run paused at breakpoints (only ``step`` when given, with changed
        ``params`` when given), or drive a run whose engine stopped. Returns the status once
        the engine has taken the command (raises TimeoutError if none does within 30 s)."""
        status = RunStatus(self.status)
        if self._on_server:  # the server's engine drives it and takes the commands
            if status is RunStatus.PAUSED:
                return self._service.continue_run(self.id, step=step, params=params).status
            if not status.is_terminal:
                return cast("RemoteService", self._service).resume_run(self.id).status
            return status.value
        if status is RunStatus.PAUSED:
            self._service.continue_run(self.id, step=step, params=params)
        if not status.is_terminal and not self._local().engine_holds(self.id):
            self._drive()
        self._commands_taken()
        return self.status

    @property
    def _on_server(self) -> bool:
        """Whether the run is on a server (``Client(url=...)``): its engine drives the run."""
        return not isinstance(self._service, LocalService)

    def _commands_taken(self, timeout: float = 30.0) -> None:
        """Wait until the engine driving the run has taken every command sent to it."""
        deadline = time.monotonic() + timeout
        while self._local().store.pending_commands_of([self.id]):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no engine took the commands sent to run {self.id}")
            time.sleep(0.02)

    def paused(self) -> list[PausedStep]:
        """The steps held at breakpoints, with the inputs they would receive (paused before)
        or the outputs they produced (paused after); load a value with :meth:`load`."""
        if self._on_server:
            views = cast("RemoteService", self._service).paused_views(self.id)
            return [
                PausedStep(
                    v.path,
                    v.moment,
                    {k: _ref_of(o) for k, o in v.inputs.items()},
                    {k: _ref_of(o) for k, o in v.outputs.items()},
                )
                for v in views
            ]
        return self._local().paused_steps(self.id)

    def load(self, ref: ValueRef) -> Any:
        """The value behind a reference (an input or output of :meth:`paused`)."""
        return self._service.artifacts.get(ref)

    def logs(self, step: str | None = None) -> list[LogView]:
        """Log lines of one step (every attempt), or of every step of the run in order."""
        if step is not None:
            return self._service.logs(self.id, step)
        lines: list[LogView] = []
        for row in self.steps:
            if row.kind == "task":
                lines.extend(self._service.logs(self.id, row.path))
        return sorted(lines, key=lambda line: line.at)

    def stop(self) -> None:
        """Stop the engine this handle started (the run stays resumable with :meth:`resume`)."""
        if self._driver is not None:
            self._driver.stop()

    def _drive(self) -> None:
        self._driver = BackgroundRun(self._local().settings, self.id).start()


class ArtifactHandle:
    """One recorded blob: its lineage, its value, and a way to save it to a file."""

    def __init__(self, service: KaonService, hash_: str) -> None:
        self._service = service
        self.hash = hash_

    def __repr__(self) -> str:
        return f"<kaon artifact {self.hash[:12]}>"

    @property
    def ref(self) -> ArtifactRef:
        """The reference (serializer, size, type) under which it is stored."""
        return self._service.experiments.artifact_ref(self.hash)

    def load(self) -> Any:
        """The value, verified against its hash."""
        return self._service.artifacts.get(self.ref)

    def save(self, path: str | Path) -> FetchView:
        """Write the value to ``path`` (the format ``kaon get -o`` would choose)."""
        return self._service.experiments.fetch(self.hash, dest=path)

    def lineage(self, depth: int = 3) -> LineageView:
        """Where it came from and what used it."""
        return self._service.experiments.lineage(self.hash, depth=depth)


def start(
    workflow: Any,
    *,
    executor: str = "inline",
    home: str | Path | None = None,
    db: str | None = None,
    no_cache: bool = False,
    force: Sequence[str] = (),
    breakpoints: Sequence[str] = (),
    url: str | None = None,
    token: str | None = None,
    **params: Any,
) -> RunHandle | RemoteRunHandle:
    """Start a run of ``workflow`` and return its :class:`RunHandle` at once.

    ``workflow`` is a ``@kaon.workflow`` object, a :class:`~kaon.model.specs.WorkflowSpec` or
    a ``FILE[:WORKFLOW]`` string. An engine drives the run in a background thread of this
    process, in the same store as ``kaon run`` (``home``/``db``, default ``KAON_HOME``);
    ``no_cache``/``force`` are ``kaon run --no-cache``/``--force``, ``breakpoints`` is
    ``kaon run --break`` (``STEP`` or ``STEP:after``). Raises DefinitionError or
    ParameterError before anything runs::

        handle = kaon.start(hello, n=5)
        handle.wait(timeout=60)        # "succeeded", "failed", "cancelled" or "paused"
        handle.output("total")

    With ``url`` (a Kaon server; ``token`` defaults to ``KAON_TOKEN``) the server's engine
    drives the run and a :class:`~kaon.remote_run.RemoteRunHandle` is returned: a name (or
    a Python workflow) starts its registered active version, a ``FILE`` is pushed first.
    """
    if url is not None:
        from kaon.service.remote import RemoteService

        remote = RemoteService(url, token=token)
        return _start_remote(remote, workflow, no_cache, force, breakpoints, params)
    client = Client(home, db, executor=executor)
    return client.start(workflow, no_cache=no_cache, force=force, breakpoints=breakpoints, **params)


def _start_remote(
    service: RemoteService,
    workflow: Any,
    no_cache: bool,
    force: Sequence[str],
    breakpoints: Sequence[str],
    params: Mapping[str, Any],
) -> RemoteRunHandle:
    from kaon.remote_run import RemoteRunHandle

    cache = CachePolicy(lookup=not no_cache, force=tuple(force))
    target: str | None = None
    if isinstance(workflow, str) and Path(workflow.split(":", 1)[0]).suffix in _FILES:
        target = workflow
    elif not isinstance(workflow, str):
        # A workflow loaded from a file is that file's code: run the version holding it
        # (pushed first when new), never whatever version is active under its name.
        file = _spec_of(workflow).location.file
        if file and Path(file).suffix in _FILES and Path(file).is_file():
            target = f"{file}:{_spec_of(workflow).name}"
    if target is not None:
        spec = service.validate(target)
        view = service.create_run(spec, params, source=target, cache=cache, breakpoints=breakpoints)
    else:
        name = workflow if isinstance(workflow, str) else _spec_of(workflow).name
        view = service.start_run(name, params, cache=cache, breakpoints=breakpoints)
    return RemoteRunHandle(service, view.id)


_FILES = (".py", ".yaml", ".yml")


def _spec_of(workflow: Any) -> WorkflowSpec:
    return workflow if isinstance(workflow, WorkflowSpec) else workflow.spec  # type: ignore[no-any-return]


def _ref_of(view: OutputView) -> ValueRef:
    """A server's view of a value as a reference :meth:`RunHandle.load` reads (a blob by its
    hash, anything else by its value)."""
    if view.kind == "artifact" and view.hash:
        return ArtifactRef(view.hash, view.serializer or "", view.size or 0, view.type or "")
    return Literal(view.value)
