"""The step runtime: the one code path that runs a task attempt inside any executor's worker.

:func:`run_task` reports ``StepStarted``, resolves the inputs through the artifact store, binds
a :class:`~kaon.steptypes.context.StepContext` to the thread (so ``kaon.context()`` works),
runs the step type, captures what the step prints as ``LogLine`` events, stores the returned
value and reports ``StepSucceeded`` or ``StepFailed``. It never raises.

Output capture installs, once per process, proxies on ``sys.stdout`` and ``sys.stderr`` that
send a write to the step running *in the writing thread* (line-buffered), and to the real
stream when no step runs there. Threads a step starts itself are not captured.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from kaon.artifacts import open_artifact_store
from kaon.artifacts.base import ArtifactStore
from kaon.artifacts.serializers import classes_of_folder
from kaon.errors import (
    ArtifactAccessError,
    ArtifactError,
    ArtifactUnavailableError,
    SerializationError,
    StepError,
    StepTimeout,
    SystemFailure,
)
from kaon.executors import _fd_capture
from kaon.executors.base import CancelFlag, EventSink, TaskRequest
from kaon.model.events import (
    LOG_OUTPUT,
    ArtifactStoreFailure,
    ErrorInfo,
    LogLine,
    LogStored,
    LogStream,
    MetricReported,
    ProgressReported,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from kaon.model.text import bounded_text, exception_text, readable_text
from kaon.model.values import RETURN, Literal, ValueRef
from kaon.steptypes.codeload import display_module_name, display_module_names
from kaon.steptypes.context import StepContext, reset_context, set_context
from kaon.steptypes.registry import get_step_type
from kaon.steptypes.scratch import scratch_root

MAX_LINE_CHARS = 8192  # a partial line longer than this is emitted as is (progress bars)
MAX_LOG_BYTES = 1_000_000  # log text per attempt sent to the state store; the rest: an artifact
LOG_LINE_MIN_BYTES = 100  # what a line counts at least against it: its row's own cost
MAX_METRIC_VALUES = 10_000  # metric values per attempt sent to the state store
MAX_HELD_METRIC_NAMES = 1_000  # names past that limit whose last value is still recorded
MAX_PROGRESS_REPORTS = 1_000  # progress reports per attempt sent as they come; then:
PROGRESS_INTERVAL_S = 1.0  # at most one a second, the latest (the others are passed over)
_KAON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_HOSTNAME = socket.gethostname()


class _LineCapture:
    """Line-buffers one step's writes to stdout/stderr and emits them as log lines."""

    __slots__ = ("ctx", "partial")

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.partial: dict[LogStream, str] = {"stdout": "", "stderr": ""}

    def write(self, stream: LogStream, text: str) -> None:
        pending = self.partial[stream] + text
        if "\n" in pending:
            *lines, pending = pending.split("\n")
            for line in lines:
                self._emit(stream, line)
        if len(pending) > MAX_LINE_CHARS:
            self._emit(stream, pending)
            pending = ""
        self.partial[stream] = pending

    def flush_partial(self) -> None:
        for stream, pending in self.partial.items():
            if pending:
                self._emit(stream, pending)
        self.partial = {"stdout": "", "stderr": ""}

    def _emit(self, stream: LogStream, line: str) -> None:
        self.ctx.emit(LogLine(self.ctx.key, time.time(), stream, line.rstrip("\r")))


class _LogBudget:
    """The event sink of one attempt, bounding the log text it passes on.

    Log lines go on to ``sink`` until they add up to ``limit`` bytes, each counting at least
    :data:`LOG_LINE_MIN_BYTES` (a row in the store costs about that before its text: a
    million empty lines would be a million rows, 150 MB, under a 1 MB limit); later lines are only
    spooled to a temporary file, and :meth:`finish` stores the attempt's whole log (every
    line, the first ones included) as a file artifact and reports its hash in one last line.
    Memory stays bounded: at most ``limit`` bytes of lines are kept, then the spool file.

    Metric values are bounded too: past :data:`MAX_METRIC_VALUES`, only the last value of
    each name (of at most :data:`MAX_HELD_METRIC_NAMES`) is held, and sent by :meth:`finish`
    with a line saying how many were not recorded: a step calling ``ctx.metric`` a million
    times would otherwise be a million rows. So are progress reports (each an event row, and
    an event sent to every follower of the run): past :data:`MAX_PROGRESS_REPORTS`, at most
    one each :data:`PROGRESS_INTERVAL_S`, the latest; one held meanwhile goes with the next
    one sent, or with the attempt's end.
    """

    def __init__(self, sink: EventSink, artifacts: _Artifacts, limit: int = MAX_LOG_BYTES) -> None:
        self.sink = sink
        self.artifacts = artifacts
        self.limit = limit
        self.used = 0
        self.kept: list[str] = []
        self.spool: Any = None  # a binary temporary file once the limit is passed
        self.spool_error: str | None = None  # why the lines past the limit are not kept
        self.held_back = 0
        self.metrics = 0
        self.held_metrics: dict[str, MetricReported] = {}
        self.progress = 0
        self.progress_sent_at = 0.0  # monotonic time of the last progress report sent
        self.held_progress: ProgressReported | None = None
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        if not isinstance(event, LogLine):
            if isinstance(event, MetricReported):
                with self.lock:
                    self.metrics += 1
                    if self.metrics > MAX_METRIC_VALUES:
                        held = self.held_metrics
                        if event.name in held or len(held) < MAX_HELD_METRIC_NAMES:
                            held[event.name] = event
                        return
            elif isinstance(event, ProgressReported):
                with self.lock:
                    self.progress += 1
                    if self.progress > MAX_PROGRESS_REPORTS:
                        now = time.monotonic()
                        if now - self.progress_sent_at < PROGRESS_INTERVAL_S:
                            self.held_progress = event
                            return
                        self.progress_sent_at, self.held_progress = now, None
            elif isinstance(event, StepSucceeded | StepFailed):
                self.finish(event.key)  # the marker line comes before the attempt's end
            self.sink(event)
            return
        entry = f"{event.stream}: {event.text}\n"
        with self.lock:
            size = len(event.text.encode("utf-8", "surrogatepass")) + 1
            self.used += size if size > LOG_LINE_MIN_BYTES else LOG_LINE_MIN_BYTES
            if self.spool is None and self.used <= self.limit:
                self.kept.append(entry)
            else:
                if self.spool_error is None:
                    self._spool(entry)
                self.held_back += 1
                return
        self.sink(event)

    def _spool(self, entry: str) -> None:
        """Write ``entry`` to the spool file (made with the first one, holding the lines kept
        so far). The spool is Kaon's, not the step's: a temporary folder that is full or
        cannot be written ends the spooling (:meth:`finish` says why), never the step."""
        try:
            if self.spool is None:
                # Closed by finish(), which every attempt reaches; in the process's scratch
                # root, which a process killed outright does not leave behind.
                self.spool = tempfile.NamedTemporaryFile(  # noqa: SIM115
                    prefix="log-", dir=scratch_root()
                )
                for line in self.kept:
                    self.spool.write(line.encode("utf-8", "surrogatepass"))
                self.kept = []
            self.spool.write(entry.encode("utf-8", "surrogatepass"))
        except OSError as exc:
            folder, why = tempfile.gettempdir(), exc.strerror or str(exc)
            self.spool_error = f"cannot write it to the temporary folder {folder}: {why}"
            spool, self.spool, self.kept = self.spool, None, []
            if spool is not None:
                with contextlib.suppress(OSError):
                    spool.close()

    def finish(self, key: Any) -> None:
        """Send the last value of each metric held back, store the whole log when lines were
        held back, and say where it is."""
        with self.lock:
            spool, self.spool, self.kept = self.spool, None, []
            held, self.held_metrics = self.held_metrics, {}
            unrecorded, self.metrics = max(self.metrics - MAX_METRIC_VALUES, 0), 0
            progress, self.held_progress = self.held_progress, None
        if progress is not None:
            self.sink(progress)
        if unrecorded:
            for metric in held.values():
                self.sink(metric)
            text = (
                f"kaon: {unrecorded:,} metric values past the {MAX_METRIC_VALUES:,} an attempt "
                f"records were not recorded, except the last value of each name "
                f"({len(held):,} kept)"
            )
            self.sink(LogLine(key, time.time(), "stderr", text))
        if spool is None:
            if self.spool_error is not None:
                text = (
                    f"kaon: log truncated after {self.limit:,} bytes ({self.held_back:,} more "
                    f"lines); the full log could not be kept: {self.spool_error}"
                )
                self.sink(LogLine(key, time.time(), "stderr", text))
            return
        try:
            spool.flush()
            ref = self.artifacts.store.put(pathlib.Path(spool.name), name=LOG_OUTPUT)
            self.sink(LogStored(key, time.time(), ref))
            where = f"the full log is artifact {getattr(ref, 'hash', '?')} (kaon get HASH)"
        except Exception as exc:  # the log is a courtesy: never fail the attempt for it
            where = f"the full log could not be stored: {exc}"
        finally:
            spool.close()
        text = (
            f"kaon: log truncated after {self.limit:,} bytes ({self.held_back:,} more lines); "
            f"{where}"
        )
        self.sink(LogLine(key, time.time(), "stderr", text))


_capture: ContextVar[_LineCapture | None] = ContextVar("kaon_output_capture", default=None)


class _StreamProxy:
    """Stands in for ``sys.stdout``/``sys.stderr`` (or, ``binary``, their ``buffer``): routes
    writes made inside a step to its log; bytes as text (UTF-8, other bytes as ``\\xNN``)."""

    def __init__(self, real: Any, stream: LogStream, binary: bool = False) -> None:
        self._kaon_real = real
        self._kaon_stream: LogStream = stream
        self._kaon_binary = binary

    def write(self, data: Any) -> int:
        capture = _capture.get()
        if capture is None:  # some streams (Ray's workers') answer None, not a count
            written = self._kaon_real.write(data)
            return written if isinstance(written, int) else len(data)
        text = bytes(data).decode("utf-8", "backslashreplace") if self._kaon_binary else data
        capture.write(self._kaon_stream, str(text))
        return len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _capture.get() is None:
            self._kaon_real.flush()

    @property
    def buffer(self) -> Any:
        """The binary stream: bytes written through it inside a step are its log too."""
        return _StreamProxy(self._kaon_real.buffer, self._kaon_stream, binary=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kaon_real, name)


_install_lock = threading.Lock()


def install_output_capture() -> None:
    """Put the capturing proxies on ``sys.stdout``/``sys.stderr`` unless they are there.

    Idempotent and thread-safe; checked on every task because test harnesses swap the streams.
    """
    if isinstance(sys.stdout, _StreamProxy) and isinstance(sys.stderr, _StreamProxy):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _StreamProxy):
            sys.stdout = _StreamProxy(sys.stdout, "stdout")  # type: ignore[assignment]
        if not isinstance(sys.stderr, _StreamProxy):
            sys.stderr = _StreamProxy(sys.stderr, "stderr")  # type: ignore[assignment]


_pid = os.getpid()  # os.getpid() is a system call: kept, and renewed in a forked child


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def worker_name() -> str:
    """``host:pid:thread``: names where an attempt runs."""
    return f"{_HOSTNAME}:{_pid}:{threading.current_thread().name}"


def error_type_name(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Class`` otherwise (a user file's module by its
    file name, see :func:`~kaon.steptypes.codeload.display_module_name`)."""
    return _class_name(type(exc))


def _type_name(exc: BaseException) -> str:
    """:func:`error_type_name`, or the bare class name when that fails (a hostile class)."""
    try:
        return error_type_name(exc)
    except Exception:
        return "Exception"


def _class_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{display_module_name(cls.__module__)}.{cls.__qualname__}"


def error_base_names(exc: BaseException) -> tuple[str, ...]:
    """The names of the exception's base classes, nearest first (``retry_on`` matches them)."""
    return tuple(_class_name(c) for c in type(exc).__mro__[1:] if issubclass(c, BaseException))


def _user_traceback(exc: BaseException, *, kaon_only: str = "full") -> str:
    """The formatted traceback without Kaon's own leading frames.

    When every frame is Kaon's, ``kaon_only`` decides: ``"full"`` keeps them all (a Kaon
    bug is worth a traceback), ``"none"`` returns "" (a step type's own error, such as a
    shell command's exit status, has no user frames to show).
    """
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_KAON_DIR):
        tb = tb.tb_next
    if tb is None and kaon_only == "none":
        return ""
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    except Exception as broken:  # an exception (or one it chains) whose __str__ raises
        frames = "".join(traceback.format_tb(tb or exc.__traceback__))
        text = f"{frames}{type(exc).__name__} (its traceback could not be formatted: {broken!r})"
    # A user file's classes print as ``kaon_user_<hash>.Flaky``: name them by their file, as
    # the error type is (``pipeline.Flaky``).
    return bounded_text(readable_text(display_module_names(text)))


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe ``exc`` for a ``StepFailed`` event.

    A :class:`~kaon.errors.StepError` keeps its recorded type, message and traceback;
    :class:`~kaon.errors.SystemFailure` and :class:`~kaon.errors.ArtifactError` are platform
    failures (an :class:`~kaon.errors.ArtifactAccessError` marked ``refused``: not retried;
    an :class:`~kaon.errors.ArtifactUnavailableError` ``unavailable``: retried after a pause);
    a ``StepTimeout`` or a ``StepError`` of type ``Timeout`` is marked as a timeout.
    """
    platform = isinstance(exc, SystemFailure | ArtifactError)
    if isinstance(exc, StepError):
        return ErrorInfo(
            exc.error_type,
            bounded_text(readable_text(exc.message)),
            bounded_text(readable_text(exc.traceback))
            if exc.traceback
            else _user_traceback(exc, kaon_only="none"),
            platform=False,
            timeout=exc.error_type == "Timeout",
        )
    return ErrorInfo(
        error_type_name(exc),
        display_module_names(exception_text(exc)),  # `module 'helper' has no attribute`
        _user_traceback(exc),
        platform=platform,
        timeout=isinstance(exc, StepTimeout),
        bases=error_base_names(exc),
        artifact_store=_artifact_store_failure(exc),
    )


def _artifact_store_failure(exc: BaseException) -> ArtifactStoreFailure:
    """How the artifact store failed, when ``exc`` is its failure (see ErrorInfo)."""
    if isinstance(exc, ArtifactAccessError):
        return "refused"
    if isinstance(exc, ArtifactUnavailableError):
        return "unavailable"
    return ""


class _Artifacts:
    """Opens the artifact store only when a value needs it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: ArtifactStore | None = None

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_artifact_store(self.url)
        return self._store

    def get(self, ref: ValueRef) -> Any:
        return ref.value if isinstance(ref, Literal) else self.store.get(ref)

    def put(self, value: Any, name: str) -> ValueRef:
        if _trivially_inline(value):
            return Literal(value)
        return self.store.put(value, name=name)


def _trivially_inline(value: Any) -> bool:
    """True for values every store keeps inline: skips opening the store for them."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return bool(-(2**53) < value < 2**53)
    return kind is str and len(value) < 1024 and "\x00" not in value


def _resolve_inputs(request: TaskRequest, artifacts: _Artifacts) -> dict[str, Any]:
    """Load every input; any failure is the platform's, not the step's."""
    values: dict[str, Any] = {}
    for name, ref in request.inputs.items():
        try:
            values[name] = artifacts.get(ref)
        except ArtifactError as exc:  # the same kind of error: an outage stays an outage
            raise type(exc)(f"input {name!r} of step {request.step_path}: {exc}") from exc
        except Exception as exc:
            raise SystemFailure(
                f"input {name!r} of step {request.step_path} cannot be loaded: "
                f"{error_type_name(exc)}: {exc}"
            ) from exc
    return values


MAX_NAMED_OUTPUTS = 1000
"""A mapping with more keys than this is one ``return`` output (a dict of per-key scores),
not that many outputs, each a row to record and show."""


def _store_outputs(value: Any, request: TaskRequest, artifacts: _Artifacts) -> dict[str, ValueRef]:
    """A mapping with string keys (at most :data:`MAX_NAMED_OUTPUTS`) becomes named outputs;
    anything else the ``return`` output (``steps.X.key`` reads into it all the same)."""
    named = isinstance(value, Mapping) and len(value) <= MAX_NAMED_OUTPUTS
    if named and all(isinstance(k, str) for k in value):
        items = list(value.items())
    else:
        items = [(RETURN, value)]
    outputs: dict[str, ValueRef] = {}
    for name, item in items:
        try:
            outputs[name] = artifacts.put(item, name=name)
        except SerializationError as exc:
            raise StepError(
                error_type_name(exc),
                f"output {name!r} of step {request.step_path} cannot be stored: {exc}",
            ) from exc
    return outputs


def _make_context(request: TaskRequest, emit: EventSink, cancel: CancelFlag | None) -> StepContext:
    return StepContext(
        key=request.key,
        step=request.step_path,
        workflow=request.workflow,
        params=request.params,
        emit=emit,
        item=request.item,
        index=request.index,
        iteration=request.iteration,
        extra={
            "timeout_s": request.timeout_s,
            "env": dict(request.env),
            "artifact_url": request.artifact_url,
            "cancel_event": cancel,
        },
    )


def _execute(request: TaskRequest, sink: EventSink, cancel: CancelFlag | None) -> None:
    sink(StepStarted(request.key, time.time(), worker_name()))
    artifacts = _Artifacts(request.artifact_url)
    emit = _LogBudget(sink, artifacts)
    try:
        _execute_step(request, emit, artifacts, cancel)
    finally:
        emit.finish(request.key)


def _execute_step(
    request: TaskRequest,
    emit: EventSink,
    artifacts: _Artifacts,
    cancel: CancelFlag | None,
) -> None:
    step_type = get_step_type(request.step_type)
    ctx = _make_context(request, emit, cancel)
    capture = _LineCapture(ctx)
    install_output_capture()
    ctx_token = set_context(ctx)
    capture_token = _capture.set(capture)
    descriptors = _fd_capture.installed()  # a process worker's fds 1 and 2 (child processes)
    if descriptors is not None:
        key = request.key
        descriptors.attach(lambda stream, text: emit(LogLine(key, time.time(), stream, text)))
    try:
        step_type.load_code(request.config)  # first: inputs of the step's classes load as them
        inputs: dict[str, Any] = {}
        if request.inputs:  # nothing to load, no classes to map (a chain's steps, often)
            file = request.config.get("file")
            with classes_of_folder(os.path.dirname(file) if isinstance(file, str) else None):
                inputs = _resolve_inputs(request, artifacts)  # as *its version's* classes
        value = step_type.run(ctx, request.config, inputs)
    except StepError as exc:
        if not exc.outputs:
            raise
        kept = _keep_failed_outputs(exc.outputs, request, artifacts, ctx)
        emit(StepFailed(request.key, time.time(), error_info(exc), kept))
        return
    finally:
        if descriptors is not None:
            descriptors.detach()
        _capture.reset(capture_token)
        reset_context(ctx_token)
        capture.flush_partial()
    outputs = _store_outputs(value, request, artifacts)
    emit(StepSucceeded(request.key, time.time(), outputs))


def _keep_failed_outputs(
    values: Mapping[str, Any], request: TaskRequest, artifacts: _Artifacts, ctx: StepContext
) -> dict[str, ValueRef]:
    """Store what a failed attempt wants kept; a value that cannot be stored is only logged
    (the step's own error is what matters)."""
    kept: dict[str, ValueRef] = {}
    for name, value in values.items():
        try:
            kept[name] = artifacts.put(value, name=name)
        except Exception as exc:
            ctx.log(f"kaon: output {name!r} of the failed attempt was not kept: {exc}")
    return kept


def run_task(request: TaskRequest, emit: EventSink, *, cancel: CancelFlag | None = None) -> None:
    """Run one attempt of a task step and report it through ``emit``. Never raises.

    Exactly one ``StepSucceeded`` or ``StepFailed`` is emitted (unless ``emit`` itself keeps
    failing). ``cancel``, when given, is exposed to step types as ``ctx.extra["cancel_event"]``
    so that long-running ones (shell) can stop early when the attempt is cancelled.
    """
    try:
        _execute(request, emit, cancel)
    except BaseException as exc:  # user code may raise SystemExit or worse; report it all
        try:
            info = error_info(exc)
        except BaseException:  # describing it failed too: the step still fails, by its type
            info = ErrorInfo(_type_name(exc), "the step's exception could not be described")
        try:
            emit(StepFailed(request.key, time.time(), info))
        except BaseException:  # the sink is gone (worker shutting down): nothing left to tell
            return
