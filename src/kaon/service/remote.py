"""The service layer over HTTP: the CLI's operations against a ``kaon server``.

:class:`RemoteService` has the method names and return types of
:class:`~kaon.service.local.LocalService` for every CLI operation (plus the registry's), so
the CLI works the same way locally and against a server. The token comes from ``KAON_TOKEN``
unless given. HTTP errors become Kaon's errors again (422 -> DefinitionError with its
problems, 404 -> NotFoundError, 409 -> InvalidActionError, 401/403 -> authentication and
permission errors); an unreachable server is a ConfigurationError.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import quote

import httpx

from kaon.dsl.loader import load_workflow, split_target
from kaon.errors import (
    AuthenticationError,
    ConfigurationError,
    DefinitionError,
    ExpressionError,
    InvalidActionError,
    KaonError,
    Location,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    Problem,
    StoreUnavailableError,
)
from kaon.model.cache_policy import CachePolicy
from kaon.model.specs import WorkflowSpec
from kaon.model.status import RunStatus
from kaon.service.bundle import read_push
from kaon.service.limits import MAX_LIST_PAGE, MAX_RUNS_PAGE, NEXT_PAGE
from kaon.service.pools import PermitRequest, PermitView, PoolRequest, PoolView
from kaon.service.registry_views import (
    AuditView,
    PushResult,
    SignalView,
    TokenView,
    VersionView,
    WorkflowView,
)
from kaon.service.run_reads import (
    LogWindowView,
    RunPage,
    RunSummary,
    StepDetail,
    StepPageView,
    check_run_list,
)
from kaon.service.views import LogView, PausedStepView, RunDetail, RunView
from kaon.store.base import EventRecord

if TYPE_CHECKING:
    from kaon.service.remote_reads import HttpArtifactStore, RemoteExperiments

Listener = Callable[[list[EventRecord]], None]

_DEFINITION_ERRORS: dict[str, type[DefinitionError]] = {
    "ParameterError": ParameterError,
    "ExpressionError": ExpressionError,
}


WORKFLOWS_PAGE = 1000  # workflows one GET /workflows answers at most
# Pauses before a POST is sent again with its Idempotency-Key (an answer lost, the server
# briefly unavailable or still handling the first): about 7.5 s in all.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0)
_STILL_HANDLED = "still being handled"
FOLLOW_OUTAGE_S = 60.0  # how long following a run rides out a server that does not answer


class Stoppable(Protocol):
    """Something a signal handler can stop (an engine, a remote follower)."""

    def stop(self) -> None:
        """Ask it to stop soon (thread- and signal-safe)."""


class _StopFollowing(Exception):
    """Unwinds the wait on a run's event stream: raised by :meth:`_Follower.stop` when
    called by the thread that waits (a signal handler: Ctrl-C in the CLI)."""


class _Follower:
    """Stops following a run's event stream when asked (Ctrl-C in the CLI)."""

    def __init__(self) -> None:
        self.stopped = False
        self._waiting_thread: int | None = None

    def stop(self) -> None:
        """Stop following. From a signal handler of the thread that waits on the stream,
        raise :class:`_StopFollowing` there: its read would go on until the next line or the
        read timeout, and a run without events meanwhile kept Ctrl-C waiting 5 s (or, if it
        ended by then, reported as if never stopped). From another thread, only the flag."""
        self.stopped = True
        if self._waiting_thread == threading.get_ident():
            self._waiting_thread = None
            raise _StopFollowing

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, interruptible as :meth:`next_line` is."""
        self._waiting_thread = threading.get_ident()
        try:
            time.sleep(seconds)
        finally:
            self._waiting_thread = None

    def next_line(self, lines: Iterator[str]) -> str | None:
        """The stream's next line (None at its end), read as the interruptible wait."""
        self._waiting_thread = threading.get_ident()
        try:
            return next(lines, None)
        finally:
            self._waiting_thread = None


def segment(value: object, what: str) -> str:
    """``value`` (a run id or prefix, a hash, a step path, a name) as one segment of a
    route's path, percent-encoded: a ``?`` or ``#`` in it is not where the path ends (``GET
    /runs/x?y/summary`` asked for the run ``x``). Raises NotFoundError, as the local service
    finds nothing, for a value no route's segment can hold: empty, ``.``, ``..`` or holding
    ``/`` (the server routes the decoded path, so it reached no route, which read as "not a
    Kaon server's answer")."""
    text = str(value)
    if text in ("", ".", "..") or "/" in text:
        raise NotFoundError(f"no {what} matches {text!r:.200}")
    return quote(text, safe="")


def _raise_for_foreign_answer(response: httpx.Response) -> NoReturn:
    """An error answer that is not one of Kaon's API (its ``{"error", "message"}`` body for
    what a route refuses): another server at that address, a proxy's error page, or a Kaon
    server without this route (a path in KAON_URL, an older version). Said on one line,
    without the page: ConfigurationError for the address, KaonError (exit 3) for a server
    or gateway that failed."""
    request = response.request
    answered = f"{request.method} {request.url} answered {response.status_code}"
    answered += f" {response.reason_phrase}".rstrip()
    if response.status_code >= 500 and response.status_code != 501:
        raise KaonError(f"the server failed: {answered}")
    raise ConfigurationError(
        f"{answered}, not a Kaon server's answer: is --url or KAON_URL the address of a Kaon "
        "server (of this version)?"
    )


def raise_for_answer(response: httpx.Response) -> None:
    """Raise the Kaon error an error answer stands for (nothing for a 2xx)."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    if not isinstance(body.get("error"), str) or (
        body["error"] == "HTTPError" and status in (404, 405)
    ):
        _raise_for_foreign_answer(response)
    kind = str(body.get("error", ""))
    message = str(body.get("message") or response.text or response.reason_phrase)
    if status == 422:
        problems = [
            Problem(
                str(p.get("message", "")),
                Location(p.get("file"), p.get("line"), p.get("field")),
            )
            for p in body.get("problems", [])
            if isinstance(p, dict)
        ]
        raise _DEFINITION_ERRORS.get(kind, DefinitionError)(problems or message)
    if status == 401:
        raise AuthenticationError(f"{message} ({_token_hint()})")
    if status == 403:
        raise PermissionDeniedError(message)
    if status == 404:
        raise NotFoundError(message)
    if status == 409:
        raise InvalidActionError(message)
    if status < 500:
        raise ConfigurationError(f"the server refused the request ({status}): {message}")
    if status == 503:  # its database briefly unreachable, or it is starting: nothing was done
        raise StoreUnavailableError(f"the server is briefly unavailable: {message}")
    raise KaonError(f"the server failed ({status} {kind}): {message}")


def _token_hint() -> str:
    """Where the token a server refused is read from, as RemoteService reads it: KAON_TOKEN,
    else the variable the project's profile names by ``token_env`` (which a 401 used to leave
    unnamed: it said to set KAON_TOKEN), else its ``token``."""
    if os.environ.get("KAON_TOKEN"):
        return "set KAON_TOKEN"
    from kaon.service.project import resolve

    try:
        found = resolve()["token"]
    except KaonError:  # an unreadable project file: it is reported where it is used
        return "set KAON_TOKEN"
    if found.layer != "project":
        return "set KAON_TOKEN"
    label, _, variable = found.source.partition(" token_env=")
    if variable:
        return f"set {variable}, the token_env of {label}, or KAON_TOKEN"
    return f"check the token of {found.source}, or set KAON_TOKEN"


def _configured_token(url: str) -> str | None:
    """The token the project's configuration names (``token`` or ``token_env``), if any, for
    a request to ``url``. Raises ConfigurationError when the configuration names another
    server (``--url`` or ``KAON_URL`` elsewhere with ``--profile prod``): a profile's token
    is never sent to a server it is not for."""
    from kaon.service.project import project_url, resolve

    found = resolve()["token"]
    if not found.value:
        return None
    named = project_url()
    if named is not None and named.rstrip("/") != url.rstrip("/"):
        raise ConfigurationError(
            f"the token of {found.source.partition(' token_env=')[0]} is for {named}, not "
            f"{url} (--url or KAON_URL): it is not sent to another server; set KAON_TOKEN "
            "for this one"
        )
    return str(found.value)


class RemoteService:
    """Kaon's operations against the server at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._experiments: RemoteExperiments | None = None
        if token is None:
            token = os.environ.get("KAON_TOKEN") or _configured_token(self.url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self.http = httpx.Client(
                base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
            )
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"invalid server URL {url!r} (--url, KAON_URL): {exc}"
            ) from None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def experiments(self) -> RemoteExperiments:
        """Artifacts, lineage, explain, compare and plot, read from the server."""
        if self._experiments is None:
            from kaon.service.remote_reads import RemoteExperiments

            self._experiments = RemoteExperiments(self)
        return self._experiments

    @property
    def artifacts(self) -> HttpArtifactStore:
        """The server's blobs, streamed over its API (read-only)."""
        return self.experiments.artifacts

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> RemoteService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._answer(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def _answer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's successful answer (its headers too). Raises as :meth:`_call`."""
        try:
            response = self.http.request(method, path, **kwargs)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise ConfigurationError(f"cannot reach the Kaon server at {self.url}: {exc}") from exc
        raise_for_answer(response)
        return response

    def pages(
        self,
        path: str,
        params: Mapping[str, Any],
        cursor: str,
        *,
        page: int | None = None,
        limit: int | None = None,
    ) -> list[Any]:
        """The rows of a paged list route, page after page: each asked with the ``Kaon-Next``
        header of the one before as ``cursor`` (``before`` or ``after``), until a page
        without it, or ``limit`` rows (None: all). ``page``: rows asked a page (None: the
        most a page holds)."""
        query = dict(params)
        found: list[Any] = []
        while True:
            wanted = page or MAX_LIST_PAGE
            if limit is not None:
                wanted = min(wanted, limit - len(found))
            response = self._answer("GET", path, params={**query, "limit": wanted})
            found.extend(response.json())
            following = response.headers.get(NEXT_PAGE)
            if following is None or (limit is not None and len(found) >= limit):
                return found
            query[cursor] = following

    def _post_once(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` so that the server acts on it once, however often it is sent: with an
        ``Idempotency-Key`` of its own, sent again with the same key when the answer is lost
        (a transport error: the request may have arrived and been done), the server is
        briefly unavailable (503) or still handling the first (409), after the pauses of
        :data:`RETRY_PAUSES_S`; the server replays its first answer. A user retrying by hand
        after "cannot reach the server" created a second run."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        for pause in (*RETRY_PAUSES_S, None):
            try:
                response = self.http.request("POST", path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if pause is None:
                    raise ConfigurationError(
                        f"cannot reach the Kaon server at {self.url}: {exc}"
                    ) from exc
                time.sleep(pause)
                continue
            again = response.status_code == 503 or (
                response.status_code == 409 and _STILL_HANDLED in response.text
            )
            if again and pause is not None:
                time.sleep(pause)
                continue
            raise_for_answer(response)
            return response.json()
        raise AssertionError("unreachable")  # pragma: no cover - the last try returns or raises

    # -- definitions and runs ----------------------------------------------------------------

    def validate(self, target: str) -> WorkflowSpec:
        """Load and validate ``FILE[:WORKFLOW]`` here. Raises DefinitionError."""
        return load_workflow(target)

    def push(
        self,
        target: str,
        *,
        activate: bool = True,
        owner_group: str | None = None,
    ) -> PushResult:
        """Send ``FILE[:WORKFLOW]`` to the server as a new version (no-op if unchanged)."""
        file, name = split_target(target)
        source, files = read_push(file)
        body = {
            "source": source,
            "file_name": os.path.basename(file),
            "workflow": name,
            "files": files,
            "activate": activate,
            "owner_group": owner_group,
        }
        return PushResult.model_validate(self._post_once("/workflows", body))

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
        """Start a run of the version holding ``source`` (the file ``spec`` came from).

        A file whose content (with its bundle) is already a version runs that version, with
        no push: an operator, who may run but not push, runs an unchanged file. Changed
        content is pushed first (without activating it), which needs the owner role: an
        operator gets a PermissionDeniedError saying so.
        """
        version: int | None = None
        if source:
            version = self._version_of(spec.name, source)
        return self.start_run(
            spec.name,
            params,
            version=version,
            from_strings=from_strings,
            cache=cache,
            breakpoints=breakpoints,
            priority=priority,
        )

    def _version_of(self, workflow: str, target: str) -> int:
        """The registered version of ``target``'s content, pushed first when it is new."""
        file, name = split_target(target)
        source, files = read_push(file)
        body = {
            "source": source,
            "file_name": os.path.basename(file),
            "workflow": name,
            "files": files,
        }
        active: int | None = None
        try:
            found = self._call(
                "POST", f"/workflows/{segment(workflow, 'workflow')}/match", json=body
            )
        except NotFoundError:
            found = None  # a new workflow: pushing it creates it
        if found is not None:
            if found.get("version") is not None:
                return int(found["version"])
            active = found.get("active_version")
        try:
            return self.push(target, activate=False).version
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(
                f"{file} differs from the active version {active} of workflow {workflow} on "
                f"{self.url} (content hashes compared): running it needs a push, and {exc}. "
                f"Ask an owner to `kaon push {file}`, or run the file as pushed."
            ) from None

    def start_run(
        self,
        workflow: str,
        params: Mapping[str, Any],
        *,
        version: int | None = None,
        from_strings: bool = False,
        cache: CachePolicy | None = None,
        breakpoints: Sequence[str] = (),
        priority: int | None = None,
    ) -> RunView:
        """Start a run of a registered workflow (its active version unless one is named)."""
        body: dict[str, Any] = {
            "workflow": workflow,
            "params": dict(params),
            "version": version,
            "from_strings": from_strings,
        }
        if cache is not None:
            body.update(no_cache=not cache.lookup, force=list(cache.force))
        if breakpoints:
            body["breakpoints"] = list(breakpoints)
        if priority is not None:
            body["priority"] = priority
        return RunView.model_validate(self._post_once("/runs", body))

    def prepare_execution(self) -> None:
        """Nothing to prepare: the server's engine executes runs."""
        return

    def execute(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Stoppable], None] | None = None,
        after_event: int = 0,
    ) -> RunStatus:
        """Have the server's engine drive the run and follow its events (after event
        ``after_event``) until it ends.

        Returns the final status, or RUNNING when stopped early (the run goes on).
        """
        if RunStatus(self.get_run(run_id).status) is RunStatus.RUNNING:
            try:
                self._call("POST", f"/runs/{segment(run_id, 'run')}/resume")
            except InvalidActionError:
                # The server's engine finished the run between the two calls: follow it anyway.
                if not RunStatus(self.get_run(run_id).status).is_terminal:
                    raise
        return self.follow(run_id, listener=listener, on_engine=on_engine, after_event=after_event)

    def follow(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Stoppable], None] | None = None,
        after_event: int = 0,
        on_unheld: Callable[[str], None] | None = None,
    ) -> RunStatus:
        """Follow a run's events (``GET /events?run_id=``, from its start or after event
        ``after_event``) until it ends; returns the final status, or RUNNING when stopped
        early (the run goes on). ``on_unheld`` is not called: a server's engine claims every
        run it has room for (one waiting in its queue is not stuck)."""
        follower = _Follower()
        if on_engine is not None:
            on_engine(follower)
        cursor = after_event
        lost_since: float | None = None  # when the server stopped answering, if it did
        while not follower.stopped:
            pause = 0.0
            try:
                for record in self._stream(run_id, cursor, follower):
                    cursor = record.id or cursor
                    if listener is not None:
                        listener([record])
                    if record.kind == "run" and self._finished(record, run_id):
                        return RunStatus(self.get_run(run_id).status)
                status = RunStatus(self.get_run(run_id).status)
                if status.is_terminal:
                    return status
                lost_since = None
            except _StopFollowing:
                break
            except (httpx.TransportError, ConfigurationError, StoreUnavailableError) as exc:
                # The server restarting (a deploy, a crash and its supervisor): its streams
                # end, it refuses connections, then answers 503 while its store opens. Ride
                # it out for FOLLOW_OUTAGE_S, then say so (it exited at the first refusal).
                if isinstance(exc, ConfigurationError) and "cannot reach" not in str(exc):
                    raise
                now = time.monotonic()
                lost_since = now if lost_since is None else lost_since
                if now - lost_since > FOLLOW_OUTAGE_S:
                    raise ConfigurationError(
                        f"lost the Kaon server at {self.url} for {FOLLOW_OUTAGE_S:.0f} s: {exc}; "
                        f"the run goes on there (kaon watch {run_id})"
                    ) from exc
                pause = min(0.5 * 2 ** min(int(now - lost_since), 3), 2.0)
            if pause:
                try:
                    follower.wait(pause)
                except _StopFollowing:
                    break
        try:
            return RunStatus(self.get_run(run_id).status)
        except (ConfigurationError, StoreUnavailableError):
            return RunStatus.RUNNING  # stopped while the server did not answer: it goes on

    def _finished(self, record: EventRecord, run_id: str) -> bool:
        status = str(record.data.get("status", ""))
        if status not in {s.value for s in RunStatus} or not RunStatus(status).is_terminal:
            return False
        # An old terminal event (before a restart) is history: ask for the run's status.
        return RunStatus(self.get_run(run_id).status).is_terminal

    def _stream(self, run_id: str, after: int, follower: _Follower) -> Iterator[EventRecord]:
        params: dict[str, Any] = {"run_id": run_id, "after": after}
        timeout = httpx.Timeout(30.0, read=5.0)
        with self.http.stream("GET", "/events", params=params, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                raise_for_answer(response)
            data: list[str] = []
            lines = response.iter_lines()
            try:
                while (line := follower.next_line(lines)) is not None:
                    if follower.stopped:
                        return
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield _event(json.loads("\n".join(data)))
                        data = []
            except httpx.ReadTimeout:
                return

    def restart(
        self,
        run_id: str,
        *,
        from_step: str | None = None,
        by: str = "",
        force: bool = False,
        only: bool = False,
    ) -> RunView:
        """Restart a finished run on the server (its engine picks it up)."""
        body = {"from_step": from_step, "force": force, "only": only}
        return RunView.model_validate(
            self._call("POST", f"/runs/{segment(run_id, 'run')}/restart", json=body)
        )

    def skip(
        self, run_id: str, path: str, *, output: Any = None, has_output: bool = False, by: str = ""
    ) -> str:
        """Skip a step; ``"command"``, ``"queued"`` or ``"recorded"`` as
        :meth:`LocalService.skip`."""
        body = {"path": path, "output": output, "has_output": has_output}
        return str(self._call("POST", f"/runs/{segment(run_id, 'run')}/skip", json=body)["how"])

    def continue_run(
        self,
        run_id: str,
        *,
        step: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_strings: bool = False,
        by: str = "",
    ) -> RunView:
        """Continue a paused run on the server (see :meth:`LocalService.continue_run`)."""
        body = {"path": step, "params": dict(params or {}), "from_strings": from_strings}
        return RunView.model_validate(
            self._call("POST", f"/runs/{segment(run_id, 'run')}/continue", json=body)
        )

    def resume_run(self, run_id: str) -> RunView:
        """Hand an active run whose engine died to the server's engine (409: finished)."""
        return RunView.model_validate(self._call("POST", f"/runs/{segment(run_id, 'run')}/resume"))

    def delete_run(self, run_id: str, *, by: str = "", by_token: str | None = None) -> None:
        """Delete a finished run on the server (``DELETE /runs/{id}``: 409 for an active
        one); the server audits it as done by the token sent."""
        self._call("DELETE", f"/runs/{segment(run_id, 'run')}")

    def kill(
        self, run_id: str, *, step: str | None = None, by: str = "", wait_s: float = 10.0
    ) -> RunView:
        """Cancel a run (or one step of it) on the server."""
        body = {"step": step}
        return RunView.model_validate(
            self._call("POST", f"/runs/{segment(run_id, 'run')}/kill", json=body)
        )

    # -- reading -----------------------------------------------------------------------------

    def resolve_run_id(self, given: str) -> str:
        """The full id of a run named by its id or a unique prefix. Raises NotFoundError."""
        return self.run_summary(given).id

    def get_run(self, run_id: str) -> RunView:
        """A run's summary."""
        return RunView.model_validate(self._call("GET", f"/runs/{segment(run_id, 'run')}/summary"))

    def paused_views(self, run_id: str) -> list[PausedStepView]:
        """The steps a run holds at breakpoints, as ``GET /runs/ID/paused`` shows them."""
        found = self._call("GET", f"/runs/{segment(run_id, 'run')}/paused")
        return [PausedStepView.model_validate(v) for v in found]

    # -- bounded reads (the same views as LocalService.reads; see kaon.service.run_reads) ----

    def run_summary(self, run_id: str) -> RunSummary:
        """The run, task counts by status and its top-level graph (containers rolled up)."""
        return RunSummary.model_validate(
            self._call("GET", f"/runs/{segment(run_id, 'run')}/summary")
        )

    def run_children(self, run_id: str, parent: str | None = None, **query: Any) -> StepPageView:
        """A page of ``parent``'s children; ``query``: status (list), step, from, to, q, sort,
        desc, limit, offset as in ``GET /runs/{id}/children``."""
        params = {k: v for k, v in {"parent": parent, **query}.items() if v is not None}
        return StepPageView.model_validate(
            self._call("GET", f"/runs/{segment(run_id, 'run')}/children", params=params)
        )

    def run_page(
        self,
        run_id: str,
        *,
        all_steps: bool = False,
        limit: int = 1000,
        offset: int = 0,
        metrics_limit: int = 1000,
        statuses: tuple[str, ...] = (),
        kind: str | None = None,
        sort: str = "index",
        descending: bool = False,
    ) -> RunPage:
        """The run with one page of its step runs (``GET /runs/{id}``)."""
        params: dict[str, Any] = {
            "all_steps": all_steps,
            "limit": limit,
            "offset": offset,
            "metrics_limit": metrics_limit,
            "status": list(statuses),
        }
        if kind is not None:
            params["kind"] = kind
        if sort != "index" or descending:  # what a server without them answers too
            params.update(sort=sort, desc=descending)
        return RunPage.model_validate(
            self._call("GET", f"/runs/{segment(run_id, 'run')}", params=params)
        )

    def step_detail(self, run_id: str, path: str) -> StepDetail:
        """One step run with attempts, outputs, metrics and cache decision."""
        found = self._call("GET", f"/runs/{segment(run_id, 'run')}/step", params={"path": path})
        return StepDetail.model_validate(found)

    def last_event_id(self, run_id: str) -> int:
        """The id of the run's newest event (0: none), as its summary gives it (``GET
        /runs/{id}/summary``, which costs what its top level shows): where a restart's
        follower starts."""
        return self.run_summary(run_id).last_event_id

    def last_log_id(self, run_id: str) -> int:
        """The id of the run's newest log line (0: none), as its summary gives it (``GET
        /runs/{id}/summary``): where a restart's log tail starts."""
        return self.run_summary(run_id).last_log_id

    def log_window(
        self, run_id: str, path: str | None = None, *, after_id: int = 0
    ) -> LogWindowView:
        """A step run's log lines after ``after_id``, oldest first (at most 200); without
        ``path``, every step's (each line with its path)."""
        params: dict[str, Any] = {"after": after_id}
        if path is not None:
            params["path"] = path
        found = self._call("GET", f"/runs/{segment(run_id, 'run')}/log", params=params)
        return LogWindowView.model_validate(found)

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[RunView]:
        """Runs, newest first: the server answers at most
        :data:`~kaon.service.limits.MAX_RUNS_PAGE` a request, so more are asked page by page,
        each after the last run of the one before (the ``Kaon-Next`` cursor): runs created or
        deleted meanwhile never make one repeat or go missing, as an offset would."""
        check_run_list(status, limit, offset)  # refused as locally, before asking
        params: dict[str, Any] = {"limit": min(limit, MAX_RUNS_PAGE), "offset": offset}
        if workflow is not None:
            params["workflow"] = workflow
        if status is not None:
            params["status"] = status
        found: list[RunView] = []
        while True:
            response = self._answer("GET", "/runs", params=params)
            page = [RunView.model_validate(v) for v in response.json()]
            found.extend(page)
            following = response.headers.get("Kaon-Next")
            if len(found) >= limit or not page or following is None:
                return found[:limit]
            params.pop("offset", None)
            params.update(limit=min(limit - len(found), MAX_RUNS_PAGE), before=following)

    def run_detail(self, run_id: str, *, all_steps: bool = False) -> RunDetail:
        """A run with its step runs and metrics: the server answers a page at a time
        (``GET /runs/{id}``), so this follows the pages to the last."""
        params: dict[str, Any] = {"all_steps": all_steps, "offset": 0}
        found = self._call("GET", f"/runs/{segment(run_id, 'run')}", params=params)
        detail = RunDetail.model_validate(found)
        total = int(found.get("steps_total", len(detail.steps)))
        while len(detail.steps) < total:
            params["offset"] = len(detail.steps)
            more = RunDetail.model_validate(
                self._call("GET", f"/runs/{segment(run_id, 'run')}", params=params)
            )
            if not more.steps:
                break
            detail.steps.extend(more.steps)
        return detail

    def logs(self, run_id: str, path: str, *, attempt: int | None = None) -> list[LogView]:
        """Log lines of a step run (every attempt, or one)."""
        params = {"attempt": attempt} if attempt is not None else {}
        found = self._call(
            "GET",
            f"/runs/{segment(run_id, 'run')}/steps/{segment(path, 'step')}/logs",
            params=params,
        )
        return [LogView.model_validate(v) for v in found]

    # -- registry ----------------------------------------------------------------------------

    def workflows(self) -> list[WorkflowView]:
        """Every registered workflow, by name: the server answers pages of at most
        :data:`WORKFLOWS_PAGE`, each asked after the last one's ``Kaon-Next`` (a server
        that sends none is asked by ``offset`` until a short page)."""
        found: list[WorkflowView] = []
        params: dict[str, Any] = {"limit": WORKFLOWS_PAGE}
        while True:
            response = self._answer("GET", "/workflows", params=params)
            page = response.json()
            found.extend(WorkflowView.model_validate(v) for v in page)
            following = response.headers.get(NEXT_PAGE)
            if following is not None:
                params = {"limit": WORKFLOWS_PAGE, "after": following}
            elif len(page) < WORKFLOWS_PAGE:
                return found
            else:
                params = {"limit": WORKFLOWS_PAGE, "offset": len(found)}

    def workflow(self, name: str) -> WorkflowView:
        """One workflow."""
        return WorkflowView.model_validate(
            self._call("GET", f"/workflows/{segment(name, 'workflow')}")
        )

    def versions(self, name: str) -> list[VersionView]:
        """Every version of a workflow, oldest first: the server answers a page at a time
        (``Kaon-Next`` while older ones remain: the ``before`` of the next page)."""
        found: list[VersionView] = []
        params: dict[str, Any] = {}
        while True:
            response = self._answer(
                "GET", f"/workflows/{segment(name, 'workflow')}/versions", params=params
            )
            page = [VersionView.model_validate(v) for v in response.json()]
            found[:0] = page
            following = response.headers.get(NEXT_PAGE)
            if following is None and response.headers.get("Kaon-Older") == "true" and page:
                following = str(page[0].version)  # a server from before Kaon-Next
            if following is None or not page:
                return found
            params = {"before": following}

    def activate(self, name: str, version: int) -> WorkflowView:
        """Make ``version`` active."""
        body = {"version": version}
        return WorkflowView.model_validate(
            self._call("POST", f"/workflows/{segment(name, 'workflow')}/activate", json=body)
        )

    def deactivate(self, name: str) -> WorkflowView:
        """Deactivate the workflow."""
        return WorkflowView.model_validate(
            self._call("POST", f"/workflows/{segment(name, 'workflow')}/deactivate")
        )

    def update_workflow(
        self, name: str, properties: Mapping[str, Any], owner_group: str | None = None
    ) -> WorkflowView:
        """Merge properties (``None`` removes a key); optionally change the owner group."""
        body = {"properties": dict(properties), "owner_group": owner_group}
        return WorkflowView.model_validate(
            self._call("PATCH", f"/workflows/{segment(name, 'workflow')}", json=body)
        )

    def create_token(
        self, name: str, role: str, groups: list[str], expires_in: float | None = None
    ) -> TokenView:
        """Create an API token (admin only); the response holds the secret."""
        body = {"name": name, "role": role, "groups": groups, "expires_in": expires_in}
        return TokenView.model_validate(self._call("POST", "/tokens", json=body))

    def list_tokens(self, *, page: int | None = None) -> list[TokenView]:
        """Every token (admin only; never the secrets), oldest first, a page at a time."""
        return [TokenView.model_validate(t) for t in self.pages("/tokens", {}, "after", page=page)]

    def audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        token_id: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AuditView]:
        """The audit trail (admin only), oldest first: entries with ids above ``after``,
        optionally of one target, one actor (a token's name) and one token (its id)."""
        given = {"target": target, "actor": actor, "token_id": token_id}
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        params.update(after=after, limit=limit)
        return [AuditView.model_validate(e) for e in self._call("GET", "/audit", params=params)]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token (admin only)."""
        self._call("DELETE", f"/tokens/{segment(token_id, 'token')}")

    def rotate_token(self, token_id: str, expires_in: float | None = None) -> TokenView:
        """A new secret for a token (the old one stops working); the response holds it."""
        body = {"expires_in": expires_in}
        return TokenView.model_validate(
            self._call("POST", f"/tokens/{segment(token_id, 'token')}/rotate", json=body)
        )

    def pools(self) -> list[PoolView]:
        """Every pool with what is used now."""
        return [PoolView.model_validate(p) for p in self._call("GET", "/pools")]

    def set_pool(self, name: str, request: PoolRequest) -> PoolView:
        """Create or change a pool (admin only)."""
        body = request.model_dump()
        return PoolView.model_validate(
            self._call("PUT", f"/pools/{segment(name, 'pool')}", json=body)
        )

    def delete_pool(self, name: str) -> None:
        """Delete a pool (admin only)."""
        self._call("DELETE", f"/pools/{segment(name, 'pool')}")

    def permits(self) -> list[PermitView]:
        """Every tag permit with what is used now."""
        return [PermitView.model_validate(p) for p in self._call("GET", "/permits")]

    def set_permit(self, tag: str, request: PermitRequest) -> PermitView:
        """Create or change a tag permit (admin only)."""
        body = request.model_dump()
        return PermitView.model_validate(
            self._call("PUT", f"/permits/{segment(tag, 'permit')}", json=body)
        )

    def delete_permit(self, tag: str) -> None:
        """Delete a tag permit (admin only)."""
        self._call("DELETE", f"/permits/{segment(tag, 'permit')}")

    def send_signal(self, name: str, params: Mapping[str, Any]) -> SignalView:
        """Send a signal with parameters."""
        body = {"name": name, "params": dict(params)}
        return SignalView.model_validate(self._post_once("/signals", body))


def _event(data: dict[str, Any]) -> EventRecord:
    return EventRecord(
        run_id=str(data["run_id"]),
        kind=str(data["kind"]),
        at=float(data["at"]),
        data=dict(data.get("data") or {}),
        step_run_id=data.get("step_run_id"),
        id=data.get("id"),
    )
