"""The ``kaon`` command: run, inspect and steer workflows from a terminal or a script.

Every command works through :class:`~kaon.service.LocalService`, the same service layer the
HTTP API uses. Commands that show state take ``--json`` and then print the documented view
models of :mod:`kaon.service.views`. Exit codes: 0 success, 1 the run did not succeed,
2 anything the user can fix (definition, parameter, argument, setting, unknown run, refused
action, a run another engine holds, no store there), 3 Kaon itself failed, 130 stopped by a
signal (the run can be resumed).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from kaon.cli._console import lazy_console, real_console
from kaon.cli._documents import document_stream, documents_only_on_stdout
from kaon.cli._options import (
    ArtifactsOpt,
    DbOpt,
    EventsOpt,
    ExecOpt,
    HomeOpt,
    JsonOpt,
    LogsOpt,
    QuietOpt,
    RayAddressOpt,
    RunArg,
    StepArg,
    UrlOpt,
    WorkersOpt,
)
from kaon.cli._root import RootGroup, root
from kaon.errors import (
    AuthenticationError,
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    KaonError,
    LeaseError,
    Location,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    Problem,
    SchemaVersionError,
)
from kaon.model.status import RunStatus, StepStatus
from kaon.service.limits import MAX_OFFSET, MAX_RUNS_LISTED, MAX_RUNS_OFFSET

# Start-up stays light (tests/unit/cli/test_startup.py): the service, store, engine, server and
# rich are imported inside the commands that use them, not here.
if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.text import Text

    from kaon.cli.follow import Output
    from kaon.service import LocalService
    from kaon.service.client import KaonService
    from kaon.service.remote import Stoppable
    from kaon.store.base import EventRecord

RequestT = TypeVar("RequestT", bound="BaseModel")
app = typer.Typer(
    name="kaon",
    help="Kaon: orchestrate and schedule machine-learning pipelines.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    # Plain help and usage errors: typer's rich formatting imports rich's markdown, syntax
    # and traceback modules, which would double the start-up of `kaon --help`.
    rich_markup_mode=None,
    cls=RootGroup,
)
app.callback()(root)
# Consoles built on first use; off a terminal (pipes, CI) they are 160 columns wide.
out = lazy_console()
err = lazy_console(stderr=True)


def styled(label: str, style: str, text: object) -> Text:
    """``label`` in ``style`` followed by ``text`` as plain, unstyled text."""
    from rich.text import Text

    return Text.assemble((label, style), " ", str(text))


# The shared options (DbOpt, RunArg, ...) live in kaon.cli._options; imported here, they stay
# importable from kaon.cli.main for the command modules.
def _service(
    db: str | None = None,
    home: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    artifacts: str | None = None,
    *,
    create: bool = False,
) -> LocalService:
    """The local service; only commands that write pass ``create`` (see open_store)."""
    from kaon.service import LocalService, Settings

    settings = Settings.from_env(
        home=home,
        db_url=db,
        executor=executor,
        workers=workers,
        artifact_url=artifacts,
        create_store=create,
    )
    return LocalService(settings)


def _client(
    url: str | None,
    db: str | None = None,
    home: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    artifacts: str | None = None,
    *,
    create: bool = False,
    ray_address: str | None = None,
) -> KaonService:
    """A server's service when ``--url`` or KAON_URL is set, else the local one (creating
    the store only with ``create``: commands that only read never create one)."""
    from kaon.service.client import open_service
    from kaon.service.settings import Settings

    settings = Settings.from_env(
        home=home,
        db_url=db,
        executor=executor,
        workers=workers,
        artifact_url=artifacts,
        create_store=create,
        ray_address=ray_address,
    )
    local = {
        "--db": db,
        "--home": home,
        "--executor": executor,
        "--workers": workers,
        "--artifacts": artifacts,
        "--ray-address": ray_address,
    }
    return open_service(url, settings, local_options=local)


def request_from_options(
    model: type[RequestT], options: Mapping[str, str], **values: Any
) -> RequestT:
    """The service's request ``model`` built from a command's option ``values``.

    What the model refuses (the bounds the HTTP API also enforces) raises ParameterError
    with one problem per value, each named by its option in ``options`` (field name ->
    ``--slots``): ``--slots: Input should be less than or equal to 1000000, got 2000000``.
    Build the request before opening a store, so a refused one creates nothing."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        problems: list[Problem] = []
        for item in exc.errors():
            where = [str(part) for part in item.get("loc", ())]
            if where:
                where[0] = options.get(where[0], where[0])
            message = str(item.get("msg", "invalid"))
            given = repr(item.get("input"))
            if len(given) <= 60:  # a long value is not repeated back
                message += f", got {given}"
            problems.append(Problem(message, Location(field=".".join(where) or None)))
        raise ParameterError(problems) from None


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(styled("error:", "bold red", message), soft_wrap=True)
    raise typer.Exit(code)


# Errors the user can fix (exit 2): a bad definition, argument or setting, something that
# does not exist, an action the current state refuses, another engine holding the run.
USER_ERRORS: tuple[type[KaonError], ...] = (
    DefinitionError,
    NotFoundError,
    InvalidActionError,
    ConfigurationError,
    LeaseError,
    AuthenticationError,
    PermissionDeniedError,
    SchemaVersionError,  # a store a newer Kaon made: upgrade Kaon
)


@contextmanager
def _errors(as_json: bool = False, *, compact: bool = False) -> Iterator[None]:
    """Map Kaon's error tree to messages and exit codes: 2 for what the user can fix,
    3 for Kaon's own failures (named as such, with the error's type and cause).

    With ``as_json`` the error is also printed on stdout as ``{"error": {type, message,
    exit_code, problems: [{message, file, line, field}]}}``: the same cause, for programs
    (on one line with ``compact``, as an NDJSON stream's last line).
    """
    try:
        yield
    except USER_ERRORS as exc:
        _fail_with(exc, 2, str(exc), as_json, compact)
    except KaonError as exc:
        _fail_with(exc, 3, f"Kaon failed: {type(exc).__name__}: {exc}", as_json, compact)


def _fail_with(
    exc: KaonError, code: int, message: str, as_json: bool, compact: bool = False
) -> NoReturn:
    if as_json:
        problems = exc.problems if isinstance(exc, DefinitionError) else []
        (_print_line if compact else _print_json)(
            {
                "error": {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "exit_code": code,
                    "problems": [
                        {
                            "message": p.message,
                            "file": p.location.file,
                            "line": p.location.line,
                            "field": p.location.field,
                        }
                        for p in problems
                    ],
                }
            }
        )
    _fail(message, code)


def _print_json(data: Any) -> None:
    stream = document_stream()
    stream.write(json.dumps(data, indent=2, default=str) + "\n")
    stream.flush()


def _print_view(view: BaseModel, as_json: bool, text: str) -> None:
    """A command's outcome: the view as JSON with ``--json``, else the line ``text``."""
    if as_json:
        _print_json(view.model_dump(mode="json"))
    else:
        out.print(text)


@contextmanager
def _stoppable() -> Iterator[Callable[[Stoppable], None]]:
    """Install SIGINT/SIGTERM handlers that stop the engine cleanly (a second SIGINT forces)."""
    engines: list[Stoppable] = []
    hits = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        hits[0] += 1
        if hits[0] > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        for engine in engines:
            engine.stop()

    from kaon.engine import stop_signals  # in a process a step forks: the default handling

    previous = stop_signals.install(handler)
    try:
        yield engines.append
    finally:
        stop_signals.restore(previous)


def _drive(
    service: KaonService,
    run_id: str,
    workflow: str,
    as_json: bool,
    output: Output | None = None,
    *,
    watch: bool = False,
    logs_after: int = 0,
    events_after: int = 0,
) -> NoReturn:
    """Execute (or with ``watch`` follow) a run, shown as ``output`` asks: a live view on a
    terminal, timestamped lines elsewhere, NDJSON events, or nothing (quiet); then report
    and exit with its outcome. Step log lines up to id ``logs_after`` and events up to id
    ``events_after`` are not shown (a restart's: those of the run before it, see
    :meth:`KaonService.last_log_id`): it shows the lines its attempts write, not again (as
    if new) those of the steps it reuses."""
    from kaon.cli.follow import LogTail, Output
    from kaon.cli.live import LiveView, PlainReporter, RunProgress

    output = output or Output()
    progress = RunProgress(run_id, workflow)
    shown = not (as_json or output.quiet or output.events)
    live = shown and out.is_terminal
    every_line = (not live) if output.logs is None else output.logs
    reporter = PlainReporter(progress, logs=every_line) if shown and not live else None

    def listener(events: list[EventRecord]) -> None:
        if output.events:
            for event in events:
                _print_line(_event_json(event))
        (reporter or progress).feed(events)
        for event in events:
            if event.kind == "run" and event.data.get("status") == RunStatus.PAUSED.value:
                held = ", ".join(event.data.get("paused") or ())
                err.print(f"paused at {held}; go on with: kaon continue {run_id}")

    def read(after: int) -> list[tuple[int, str, str]]:
        window = service.log_window(run_id, after_id=after)
        return [(x.id, x.path or "?", x.text) for x in window.lines]

    def above_live_view(path: str, lines: list[str]) -> None:
        progress.feed_logs(path, lines)
        if every_line:  # printed above the live view, which keeps redrawing below them
            for line in lines:
                real_console(out).print(f"[{path}] {line}", markup=False, highlight=False)

    sink = reporter.feed_logs if reporter is not None else above_live_view
    tailing = live or (reporter is not None and every_line)
    with ExitStack() as stack:
        if as_json or output.events:  # a step running here must not write into them
            stack.enter_context(documents_only_on_stdout())
        register = stack.enter_context(_stoppable())
        if live:
            stack.enter_context(LiveView(progress, real_console(out)))
        if tailing:
            stack.enter_context(LogTail(read, sink, after_id=logs_after))
        if watch:
            status = service.follow(
                run_id,
                listener=listener,
                on_engine=register,
                after_event=events_after,
                on_unheld=lambda sentence: err.print(sentence, markup=False, highlight=False),
            )
        else:
            status = service.execute(
                run_id, listener=listener, on_engine=register, after_event=events_after
            )
    if reporter is not None:
        reporter.finish()  # the run's last line, after its steps' last log lines
    _report(service, run_id, status, as_json, output, watch=watch)


def _event_json(event: EventRecord) -> dict[str, Any]:
    from kaon.service.registry_views import event_view

    data = event_view(event).model_dump(mode="json")
    if event.id is None:  # handed over as committed, before the store numbered it (run)
        del data["id"]
    return {"type": "event", **data}


def _print_line(data: Any) -> None:
    """One compact JSON document on one line (NDJSON)."""
    stream = document_stream()
    stream.write(json.dumps(data, default=str, separators=(",", ":")) + "\n")
    stream.flush()


def _report(
    service: KaonService,
    run_id: str,
    status: RunStatus,
    as_json: bool,
    output: Output | None = None,
    *,
    watch: bool = False,
) -> NoReturn:
    """Print a run's outcome and exit with its code (0 succeeded, 1 not, 130 stopped)."""
    if output is not None and output.events:
        detail = service.run_detail(run_id)
        _print_line({"type": "result", **detail.model_dump(mode="json")})
    elif as_json:
        _print_json(service.run_detail(run_id).model_dump(mode="json"))
    elif output is not None and output.quiet:
        view = service.get_run(run_id)
        out.print(f"run {view.id} {view.status}", markup=False, highlight=False)
    else:
        from kaon.cli.show_view import report

        report(service, out, run_id)  # folded: counts, failed and slowest steps
    if status is RunStatus.RUNNING:
        from kaon.service.local import LocalService

        # Only a local engine stops with this command; a server's drives the run on.
        if watch or not isinstance(service, LocalService):
            err.print(f"stopped watching; the run goes on (kaon watch {run_id})")
        else:
            err.print(f"stopped; the run goes on with: kaon resume {run_id}")
        raise typer.Exit(130)
    raise typer.Exit(0 if status is RunStatus.SUCCEEDED else 1)


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(metavar="FILE[:WORKFLOW]", help="FILE[:WORKFLOW] (.py, .yaml or .yml)")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="A parameter: key=value."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    ray_address: RayAddressOpt = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Look nothing up in the cache (entries are recorded)."),
    ] = False,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            metavar="STEP",
            help="Execute this step (an id or a path) without a cache lookup; repeatable.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    logs: LogsOpt = None,
    events: EventsOpt = False,
    breaks: Annotated[
        list[str] | None,
        typer.Option(
            "--break",
            metavar="STEP[:after]",
            help="Pause before this step (STEP, or STEP:after to pause after it); repeatable. "
            "Go on with `kaon continue RUN`.",
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            metavar="N",
            min=-1000,
            max=1000,
            help="Order among runs competing for pool slots, higher first (default: the "
            "workflow's).",
        ),
    ] = None,
) -> None:
    """Validate and run a workflow. Prints the run id first (with --json: one document, the
    run's detail or the error); exits 0 when it succeeds."""
    from kaon.cli.follow import Output
    from kaon.model.cache_policy import CachePolicy
    from kaon.model.params import parse_assignments

    with (
        _errors(as_json or events, compact=events),
        _client(
            url, db, home, executor, workers, artifacts, create=True, ray_address=ray_address
        ) as service,
    ):
        service.prepare_execution()  # a worker boots while the workflow loads
        spec = service.validate(target)
        given = parse_assignments(param or [])
        cache = CachePolicy(lookup=not no_cache, force=tuple(force or ()))
        created = service.create_run(
            spec,
            given,
            from_strings=True,
            source=target,
            cache=cache,
            breakpoints=tuple(breaks or ()),
            priority=priority,
        )
        if not (as_json or events):  # --json: one document (with the id); --events: NDJSON
            sys.stdout.write(created.id + "\n")
            sys.stdout.flush()
        output = Output(quiet=quiet, logs=logs, events=events)
        _drive(service, created.id, spec.name, as_json, output)


@app.command()
def watch(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    logs: LogsOpt = None,
    events: EventsOpt = False,
) -> None:
    """Follow a run started elsewhere (another terminal, a trigger, a server) until it ends.

    The live view on a terminal, timestamped lines elsewhere; exits with the run's outcome
    (0 succeeded, 1 failed or cancelled). Example: kaon watch 20261202-0301 --logs
    """
    from kaon.cli.follow import Output

    with _errors(as_json or events, compact=events), _client(url, db, home) as service:
        full = service.resolve_run_id(run_id)
        view = service.get_run(full)
        output = Output(quiet=quiet, logs=logs, events=events)
        _drive(service, full, view.workflow, as_json, output, watch=True)


@app.command()
def resume(
    run_id: RunArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    logs: LogsOpt = None,
    events: EventsOpt = False,
    ray_address: RayAddressOpt = None,
) -> None:
    """Continue a run whose engine stopped or died, without redoing finished steps (attempts
    still running on the executor, a Ray cluster, are re-attached, not run again)."""
    from kaon.cli.follow import Output
    from kaon.service.client import server_url

    output = Output(quiet=quiet, logs=logs, events=events)
    with _errors(as_json or events, compact=events):
        chosen: str | None = executor
        # Locally, the executor the run was started on: its attempts may live on. A server
        # resumes a run on its own executor, and is given none (see choose_server).
        if chosen is None and not server_url(url):
            with _client(url, db, home, workers=workers, artifacts=artifacts) as probe:
                chosen = probe.get_run(probe.resolve_run_id(run_id)).executor or None
    with (
        _errors(as_json or events, compact=events),
        _client(url, db, home, chosen, workers, artifacts, ray_address=ray_address) as service,
    ):
        full = service.resolve_run_id(run_id)
        view = service.get_run(full)
        if RunStatus(view.status).is_terminal:
            # Resuming is idempotent: a finished run is reported, not an error.
            err.print(f"run {full} already {view.status}; nothing to resume")
            _report(service, full, RunStatus(view.status), as_json, output)
        _drive(service, full, view.workflow, as_json, output)


@app.command(name="continue")
def continue_(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    step: Annotated[
        str | None,
        typer.Option(
            "--step", metavar="PATH", help="Release only this paused step (a path); default: all."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", metavar="KEY=VALUE", help="Change a parameter first: key=value."
        ),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    ray_address: RayAddressOpt = None,
) -> None:
    """Go on with a run paused at breakpoints. When no engine drives it any more (its
    `kaon run` was stopped or killed), drive it here, as `kaon resume` does."""
    from kaon.model.params import parse_assignments
    from kaon.service.local import LocalService

    with (
        _errors(as_json),
        _client(url, db, home, executor, workers, artifacts, ray_address=ray_address) as service,
    ):
        full = service.resolve_run_id(run_id)
        given = parse_assignments(param or [])
        view = service.continue_run(full, step=step, params=given, from_strings=True)
        if isinstance(service, LocalService) and not service.engine_holds(full):
            _drive(service, full, view.workflow, as_json)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            err.print(f"run {full}: continued")


@app.command()
def restart(
    run_id: RunArg,
    from_step: Annotated[
        str | None,
        typer.Option("--from", metavar="STEP", help="Also rerun this step and all after it."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="The restarted steps execute, cache or not.")
    ] = False,
    only: Annotated[
        bool,
        typer.Option(
            "--only",
            help="With --from: only that step and what depends on it, not other failed steps.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    logs: LogsOpt = None,
    events: EventsOpt = False,
) -> None:
    """Run a finished run again from its failed steps (or --from a step), reusing the rest."""
    from kaon.cli.follow import Output

    output = Output(quiet=quiet, logs=logs, events=events)
    with (
        _errors(as_json or events, compact=events),
        _client(url, db, home, executor, workers, artifacts) as service,
    ):
        full = service.resolve_run_id(run_id)
        before, seen = service.last_log_id(full), service.last_event_id(full)
        view = service.restart(full, from_step=from_step, by="cli", force=force, only=only)
        _drive(service, full, view.workflow, as_json, output, logs_after=before, events_after=seen)


@app.command()
def skip(
    run_id: RunArg,
    step: StepArg,
    output: Annotated[
        str | None,
        typer.Option("--output", metavar="JSON", help="JSON value downstream steps receive."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Skip a step. A finished run then goes on from there; a running one is told to."""
    with _errors(as_json), _client(url, db, home, executor, workers, artifacts) as service:
        full = service.resolve_run_id(run_id)
        value: Any = None
        if output is not None:
            from kaon.model.params import strict_json

            try:
                value = strict_json(output)
            except ValueError as exc:  # NaN, Infinity, too deep: no stored value can hold it
                _fail(f"--output is not a valid JSON value: {exc}")
        how = service.skip(full, step, output=value, has_output=output is not None, by="cli")
        if how in ("command", "queued"):
            if how == "command":
                err.print(f"asked the engine running {full} to skip {step}")
            else:
                err.print(
                    f"no engine drives {full}: the skip of {step} is recorded and applies "
                    f"when the run resumes (kaon resume {full})"
                )
            if as_json:  # the run the skip went to, as `kill` and `continue` print theirs
                _print_json(service.get_run(full).model_dump(mode="json"))
            return
        before, seen = service.last_log_id(full), service.last_event_id(full)
        view = service.restart(full, by="cli")
        _drive(service, full, view.workflow, as_json, logs_after=before, events_after=seen)


@app.command()
def kill(
    run_id: RunArg,
    step: Annotated[
        str | None,
        typer.Option("--step", metavar="STEP", help="Cancel only this step of the running run."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run (or one running step): running attempts are stopped, nothing new starts."""
    with _errors(as_json), _client(url, db, home) as service:
        view = service.kill(service.resolve_run_id(run_id), step=step, by="cli")
        _print_view(view, as_json, f"{view.id} {view.status}")


runs_app = typer.Typer(
    help="List runs, newest first (kaon runs), or delete finished ones (kaon runs delete).",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs(
    ctx: typer.Context,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", metavar="WORKFLOW", help="Only this workflow's runs."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only runs in this status: " + ", ".join(s.value for s in RunStatus) + ".",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", metavar="N", min=1, max=MAX_RUNS_LISTED, help="Show at most N runs."
        ),
    ] = 20,
    offset: Annotated[
        int,
        typer.Option(
            "--offset", metavar="N", min=0, max=MAX_RUNS_OFFSET, help="Skip the N newest runs."
        ),
    ] = 0,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from kaon.cli import render

    with _errors(as_json):
        if status is not None and status not in {s.value for s in RunStatus}:
            known = ", ".join(s.value for s in RunStatus)
            raise ConfigurationError(f"--status must be one of {known}, not {status!r}")
    with _errors(as_json), _client(url, db, home) as service:
        views = service.list_runs(workflow=workflow, status=status, limit=limit, offset=offset)
        if as_json:
            _print_json([v.model_dump(mode="json") for v in views])
        else:
            render.run_list(out, views)


def _interactive() -> bool:
    """Whether a person answers on this terminal (a destructive command asks first)."""
    return sys.stdin.isatty()


@runs_app.command("delete")
def runs_delete(
    run_ids: Annotated[
        list[str],
        typer.Argument(metavar="RUN...", help="Finished runs to delete (ids or unique prefixes)."),
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking (asked only on a terminal).")
    ] = False,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished runs with every record of them (steps, logs, metrics, events,
    artifact records, cache entries made from them); kaon gc then frees the blobs only they
    used. An active run, or one an engine still holds, is refused (exit 2): kill it first."""
    with _errors(as_json), _client(url, db, home) as service:
        full = [service.resolve_run_id(run_id) for run_id in dict.fromkeys(run_ids)]
        if not (yes or as_json) and _interactive():
            listed = ", ".join(full)
            if not typer.confirm(f"delete {len(full)} run(s): {listed}?", default=False):
                _fail("nothing deleted")
        for run_id in full:
            service.delete_run(run_id, by="cli")
            if not as_json:
                out.print(f"deleted {run_id}")
        if as_json:
            _print_json({"deleted": full})


@app.command()
def show(
    run_id: RunArg,
    all_steps: Annotated[
        bool,
        typer.Option("--all", help="List every step run of every level (streamed page by page)."),
    ] = False,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="List the tasks of every level in this status, a page at a time: "
            + ", ".join(s.value for s in StepStatus)
            + ".",
        ),
    ] = None,
    page: Annotated[
        int | None,
        typer.Option(
            "--page", metavar="N", min=1, max=MAX_OFFSET, help="Show page N (of --limit steps)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", "-n", metavar="N", min=1, max=1000, help="Show at most N steps (a page)."
        ),
    ] = None,
    offset: Annotated[
        int,
        typer.Option("--offset", metavar="N", min=0, max=MAX_OFFSET, help="Skip this many steps."),
    ] = 0,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run: task counts by status, each top-level step's status, attempts, duration,
    outputs and errors, and the first failed tasks of foreach items and loop iterations.

    A foreach or loop is one line with its items counted by status. --status failed pages
    through the failed tasks of every level (--page N); --all lists every step run of every
    level; --limit and --offset page through the steps. The cost follows what is shown, not
    the size of the run."""
    from kaon.cli.show_view import ShowRequest
    from kaon.cli.show_view import show as show_run

    with _errors(as_json):
        if status is not None and status not in {s.value for s in StepStatus}:
            known = ", ".join(s.value for s in StepStatus)
            raise ConfigurationError(f"--status must be one of {known}, not {status!r}")
    with _errors(as_json), _client(url, db, home) as service:
        request = ShowRequest(
            service.resolve_run_id(run_id),
            all_steps=all_steps,
            status=status,
            page=page,
            limit=limit,
            offset=offset,
            as_json=as_json,
        )
        show_run(service, out, request)


@app.command()
def logs(
    run_id: RunArg,
    step: StepArg,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", "-a", metavar="N", min=1, help="Only attempt N (default: all)."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a step's log lines (stdout, stderr, logger), then its errors' tracebacks."""
    from kaon.cli import render

    with _errors(as_json), _client(url, db, home) as service:
        full = service.resolve_run_id(run_id)
        lines = service.logs(full, step, attempt=attempt)
        if as_json:
            _print_json([line.model_dump(mode="json") for line in lines])
            return
        found = service.step_detail(full, step)
        detail = found.step
        if not lines and attempt is None and found.cached_from:
            # A cached step ran nothing: its log is the execution's it reused, as its
            # metrics are. Said on stderr: stdout stays the log.
            source_run, _, source_path = found.cached_from.partition(":")
            from rich.text import Text

            try:
                reused = service.logs(source_run, source_path)
            except NotFoundError:  # that run was deleted since
                reused = None
            if reused is not None:
                said = f"step {step} of run {full} is cached: the log of the execution it reused "
                err.print(Text(said + found.cached_from, style="dim"), soft_wrap=True)
                render.log_lines(out, reused)
                return
        if not lines and not any(a.error for a in detail.attempt_list):
            which = f"attempt {attempt} of " if attempt is not None else ""
            said = f"{which}step {step} of run {full} ({detail.status}) wrote no log lines"
            from rich.text import Text

            err.print(Text(said, style="dim"))  # on stderr: stdout stays the log, empty
            return
        render.log_lines(out, lines)
        render.attempt_errors(out, detail, attempt)


@app.command()
def validate(
    target: Annotated[
        str, typer.Argument(metavar="FILE[:WORKFLOW]", help="FILE[:WORKFLOW] (.py, .yaml or .yml)")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Check a workflow definition and list every problem with file, line and field."""
    # What LocalService.validate does, without opening (or importing) a store and an engine:
    # the expressions are held to the budget `kaon run` and `kaon push` hold them to.
    from kaon.dsl.loader import load_workflow
    from kaon.model.expressions import configure_budget
    from kaon.service.settings import expression_budget

    with _errors(as_json):
        configure_budget(expression_budget())
    try:
        spec = load_workflow(target)
    except DefinitionError as exc:
        if as_json:
            _print_json(
                {
                    "valid": False,
                    "problems": [
                        {
                            "message": p.message,
                            "file": p.location.file,
                            "line": p.location.line,
                            "field": p.location.field,
                        }
                        for p in exc.problems
                    ],
                }
            )
        else:
            err.print(styled("invalid:", "bold red", exc), soft_wrap=True)
        raise typer.Exit(2) from None
    count = sum(1 for _ in spec.graph.walk())
    if as_json:
        _print_json({"valid": True, "workflow": spec.name, "steps": count})
    else:
        from rich.text import Text

        steps = f"{count} step" + ("" if count == 1 else "s")
        out.print(Text.assemble(("valid", "green"), f": workflow {spec.name} ({steps})"))


from kaon.cli import experiments as _experiments  # noqa: E402,F401  (registers its commands)
from kaon.cli import server_cmds as _server_cmds  # noqa: E402

_server_cmds.register(app)

from kaon.cli import trigger_cmds as _trigger_cmds  # noqa: E402

_trigger_cmds.register(app)

from kaon.cli import config_cmds as _config_cmds  # noqa: E402

_config_cmds.register(app)

from kaon.cli import breakpoint_cmds as _breakpoint_cmds  # noqa: E402

_breakpoint_cmds.register(app)

from kaon.cli import pool_cmds as _pool_cmds  # noqa: E402

_pool_cmds.register(app)


# The documented schema of every --json output of the core commands: view model (in
# kaon.service.views, imported when asked for), whether a list, the commands that print it.
JSON_SCHEMAS: dict[str, tuple[str, bool, str]] = {
    "run": ("RunView", False, "kaon runs (a list), kaon kill"),
    "run-detail": ("RunDetail", False, "kaon show, run, resume, restart, skip"),
    "log": ("LogView", True, "kaon logs (a list)"),
}


@app.command("schema")
def schema_command(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help=f"One of: {', '.join(JSON_SCHEMAS)} (default: all)."),
    ] = None,
) -> None:
    """Print the JSON Schema of the commands' --json output."""
    if name is not None and name not in JSON_SCHEMAS:
        _fail(f"unknown schema {name!r}; choose one of {', '.join(JSON_SCHEMAS)}")
    from kaon.service import views

    chosen = {name: JSON_SCHEMAS[name]} if name else JSON_SCHEMAS
    documents = {}
    for key, (model_name, is_list, used_by) in chosen.items():
        model: type[BaseModel] = getattr(views, model_name)
        document = model.model_json_schema()
        document["description"] = f"{document.get('description', '')} Output of {used_by}."
        documents[key] = {"type": "array", "items": document} if is_list else document
    _print_json(documents[name] if name else documents)


from kaon.cli._examples import add_examples  # noqa: E402

add_examples(app)  # every command is registered by now


def _app_for(argv: list[str]) -> typer.Typer:
    """The app that runs ``argv``: when it names a top-level command, an app of that command
    alone, else the whole app. Typer builds every registered command's parameters on each
    call, which would cost ``kaon run`` more than the rest of its start-up."""
    name = argv[0] if argv else ""
    chosen = [
        command
        for command in app.registered_commands
        if (command.name or typer.main.get_command_name(getattr(command.callback, "__name__", "")))
        == name
    ]
    if len(chosen) != 1:
        return app
    alone = typer.Typer(
        name="kaon",
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        cls=RootGroup,
    )
    alone.registered_commands = chosen
    alone.callback()(root)  # a group, so that the command's name is read as one
    return alone


def main() -> None:
    """Entry point of the ``kaon`` script."""
    _app_for(sys.argv[1:])()


if __name__ == "__main__":
    # ``python -m kaon.cli.main``: this copy of the module is ``__main__``, and the command
    # modules that import the app (kaon.cli.experiments: compare, artifacts, cache, ...)
    # register on ``kaon.cli.main``'s, another module; run that one, which has them all.
    from kaon.cli.main import main as _main

    _main()
