"""Signals (``POST /signals``) and the live event stream (``GET /events``, Server-Sent Events).

The stream polls the store's events table by id, so it shows what any engine of any process
committed. Each event is sent as::

    id: <event id>
    event: <kind>            (run, step, progress, action, ...)
    data: <EventView JSON>

A client that reconnects sends ``Last-Event-ID`` (or ``after``) and misses nothing: ids become
visible in increasing order on every store (see :mod:`kaon.store.feed`), so a reader never
passes over a row that commits late. Without either, the stream of every run starts "from now"
(nothing of the history is replayed), and the stream of one run (``run_id``) from its start.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from kaon.api.deps import IDEMPOTENCY_KEY, Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.feed_hub import FeedHub
from kaon.api.guard import bearer_secret
from kaon.api.paging import next_page
from kaon.errors import (
    AuthenticationError,
    KaonError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from kaon.service.registry_views import (
    SignalRequest,
    SignalView,
    event_view,
    signal_view,
)
from kaon.store.base import EventRecord

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)

POLL_S = 0.1
HEARTBEAT_S = 15.0
REAUTH_S = 5.0  # how often an open stream checks that its token still stands
BATCH = 500
SIGNALS_SCANNED = 20_000  # signals one GET /signals looks at, visible to the caller or not


@router.post("/signals", response_model=SignalView, status_code=201, summary="Send a signal")
def send_signal(
    body: SignalRequest,
    response: Response,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> SignalView:
    """Store a signal with parameters; the signal triggers and waiting steps of workflows
    the caller may operate (its groups) react to it. A retry with the same
    ``Idempotency-Key`` returns the first signal and stores no second one."""

    def work(_: dict[str, Any]) -> dict[str, Any]:
        record = services.registry.send_signal(
            body.name, body.params, principal, dedupe_key=body.dedupe_key
        )
        return signal_view(record).model_dump(mode="json")

    request = {"route": "send_signal", **body.model_dump(mode="json")}
    answer, replayed = services.once(principal, idempotency_key, request, {}, work)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return SignalView.model_validate(answer)


@router.get("/signals", response_model=list[SignalView], summary="List signals")
def list_signals(
    response: Response,
    name: str | None = Query(None, max_length=200),
    after: int = Query(0, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[SignalView]:
    """Signals with ids above ``after``, oldest first: a token with groups sees those that
    may reach its groups' workflows, read past the others until ``limit`` are found (at most
    :data:`SIGNALS_SCANNED` looked at). While more may remain, ``Kaon-Next`` says where the
    next page starts (the last id looked at: send it back as ``after``), even when this page
    is short or empty. ``Kaon-Scanned-To`` is that id on every page (deprecated: clients
    read ``Kaon-Next``)."""
    groups = None if principal.reads_everything else set(principal.groups)
    shown: list[SignalView] = []
    cursor, scanned, more = after, 0, True
    while len(shown) < limit and scanned < SIGNALS_SCANNED:
        page = services.store.signals(name=name, after_id=cursor, limit=limit)
        for signal in page:
            assert signal.id is not None
            cursor = signal.id
            if groups is None or signal.scope is None or groups & set(signal.scope):
                shown.append(signal_view(signal))
                if len(shown) == limit:
                    break
        scanned += len(page)
        if len(page) < limit and len(shown) < limit:
            more = False  # every signal was looked at
            break
    response.headers["Kaon-Scanned-To"] = str(cursor)
    next_page(response, cursor if more else None)
    return shown


def _frame(record: EventRecord) -> str:
    data = json.dumps(event_view(record).model_dump(mode="json"), separators=(",", ":"))
    return f"id: {record.id}\nevent: {record.kind}\ndata: {data}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    summary="Live event stream (Server-Sent Events)",
    responses={200: {"content": {"text/event-stream": {}}, "description": "The stream."}},
)
async def stream_events(
    request: Request,
    run_id: str | None = Query(None, max_length=200, description="Only this run's events."),
    after: int | None = Query(
        None,
        ge=0,
        le=2**62,
        description="Start after this event id (default: from now, or a run's first event).",
    ),
    last_event_id: str | None = Header(None, max_length=30),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StreamingResponse:
    """Stream committed engine events as they happen, oldest first: those of the runs the
    caller may read (its groups' workflows, unless it reads everything)."""
    if run_id is not None:
        run_id = await anyio.to_thread.run_sync(services.authorize_run, principal, "viewer", run_id)
    cursor = await anyio.to_thread.run_sync(start_cursor, services, run_id, after, last_event_id)
    stopping: threading.Event | None = request.app.state.stopping
    readable = None if principal.reads_everything or run_id else _RunFilter(services, principal)
    hub: FeedHub | None = getattr(request.app.state, "feed_hub", None)
    if hub is not None:
        await anyio.to_thread.run_sync(hub.start)
    secret = bearer_secret(request.scope)
    return StreamingResponse(
        _events(request, services, run_id, cursor, stopping, hub, readable, secret),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _parse_id(value: str | None) -> int | None:
    """A ``Last-Event-ID`` as an event id; None for one that is not a whole number of 0 or
    more (``-1`` replayed the whole history: it was read as 0)."""
    try:
        found = int(value) if value else None
    except ValueError:
        return None
    return found if found is not None and found >= 0 else None


def start_cursor(
    services: Services, run_id: str | None, after: int | None, last_event_id: str | None
) -> int:
    """Where a stream starts: after the ``Last-Event-ID`` a reconnecting client sends (a
    browser's ``EventSource`` reconnects to the URL it opened, ``after`` included, so the
    header wins), else after ``after``; else at a run's first event, or, for every run,
    from now. A cursor past the newest event starts from the newest."""
    resumed = _parse_id(last_event_id)
    cursor = resumed if resumed is not None else after
    if cursor is None:
        return 0 if run_id is not None else services.store.last_event_id()
    # A cursor past the newest event is not this feed's (another database's, one restored
    # from a backup): from the newest on, rather than nothing until ids reach it.
    return min(cursor, services.store.last_event_id())


class _RunFilter:
    """Which runs' events a principal may see. A run's workflow is remembered for the
    stream's life (a run never changes workflow); whether the principal may read a workflow
    only until the next :meth:`recheck`, since an admin may move it to another group."""

    def __init__(self, services: Services, principal: Principal) -> None:
        self.services = services
        self.principal = principal
        self.workflows: dict[str, str | None] = {}  # run id -> its workflow (None: no run)
        self.readable: dict[str, bool] = {}  # workflow -> may the principal read it

    def recheck(self, principal: Principal) -> None:
        """Ask again, as ``principal``, whether each workflow may be read."""
        self.principal = principal
        self.readable.clear()

    def _workflow(self, run_id: str) -> str | None:
        if run_id not in self.workflows:
            if len(self.workflows) > 10_000:
                self.workflows.clear()
            try:
                self.workflows[run_id] = self.services.store.get_run(run_id).workflow
            except KaonError:
                self.workflows[run_id] = None
        return self.workflows[run_id]

    def _reads(self, workflow: str) -> bool:
        if workflow not in self.readable:
            group = self.services.registry.owner_group(workflow)
            self.readable[workflow] = self.principal.can("viewer", group)
        return self.readable[workflow]

    def __call__(self, records: list[EventRecord]) -> list[EventRecord]:
        if self.principal.reads_everything:
            return records
        if self.principal.run_scope is not None:  # a run token: its own run only
            return [r for r in records if self.principal.can("viewer", run_id=r.run_id)]
        shown = []
        for record in records:
            workflow = self._workflow(record.run_id)
            if workflow is not None and self._reads(workflow):
                shown.append(record)
        return shown


def still_reads(
    services: Services, secret: str | None, run_id: str | None, readable: _RunFilter | None
) -> bool:
    """Whether a stream may go on: its token still stands (not revoked, expired or rotated
    away) and may still read the run it follows (the run's workflow may have moved to
    another group). A stream of every run asks again which workflows it may read."""
    try:
        principal = services.auth.authenticate(secret)
        if run_id is not None:
            services.authorize_run(principal, "viewer", run_id)
    except (AuthenticationError, PermissionDeniedError, NotFoundError):
        return False  # NotFoundError: the run it follows was deleted (reconnection: 404)
    except StoreUnavailableError:
        return True  # a store briefly down ends no stream: asked again at the next check
    if readable is not None:
        readable.recheck(principal)
    return True


def _read(
    services: Services, run_id: str | None, cursor: int
) -> tuple[list[EventRecord], int] | None:
    """Events above ``cursor`` from the store, and the cursor after them; None when the
    stream's run no longer exists (deleted)."""
    try:
        batch = services.store.events(run_id, after_id=cursor, limit=BATCH)
    except NotFoundError:
        return None
    return batch, max((r.id or 0 for r in batch), default=cursor)


async def _events(
    request: Request,
    services: Services,
    run_id: str | None,
    cursor: int,
    stopping: threading.Event | None,
    hub: FeedHub | None = None,
    readable: _RunFilter | None = None,
    secret: str | None = None,
) -> AsyncIterator[str]:
    """The stream: events above ``cursor`` from the hub's buffer when it covers them (no
    query per follower), else from the store (catching up on older ones). Every
    :data:`REAUTH_S` the token that opened it is authenticated and authorized again: once it
    is revoked or expired, or may no longer read the run it follows, the stream ends (the
    client's reconnection is then refused with 401 or 403); a stream of every run stops
    showing the runs of a workflow moved to a group the token is not in. A stream of one run
    ends once the run is deleted (its reconnection is a 404): it sent keep-alives for as long
    as the client stayed or, reading the store, failed mid-stream."""
    yield ": connected\n\n"
    beat = checked = time.monotonic()
    while not (stopping is not None and stopping.is_set()):
        if time.monotonic() - checked > REAUTH_S:
            checked = time.monotonic()
            reads = await anyio.to_thread.run_sync(still_reads, services, secret, run_id, readable)
            if not reads:
                return
        buffered = hub.read(cursor, run_id, BATCH) if hub is not None else None
        if buffered is None:
            found = await anyio.to_thread.run_sync(_read, services, run_id, cursor)
            if found is None:
                return
            batch, after = found
        else:
            batch, after = buffered
        if readable is not None and batch:
            batch = await anyio.to_thread.run_sync(readable, batch)
        moved = after > cursor
        cursor = after
        if batch:
            # One chunk per batch, not one per event: each chunk is a write to the socket,
            # and a client gone mid-batch made every later write of the batch log asyncio's
            # "socket.send() raised exception." (hundreds of lines per reconnect in a burst).
            yield "".join(_frame(record) for record in batch)
        if moved:
            beat = time.monotonic()
            continue
        if await request.is_disconnected():
            return
        if time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)
