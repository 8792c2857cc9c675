"""Signals (``POST /signals``) and the live event stream (``GET /events``, Server-Sent Events).

The stream polls the store's events table by id, so it shows what any engine of any process
committed. Each event is sent as::

    id: <event id>
    event: <kind>            (run, step, progress, action, ...)
    data: <EventView JSON>

A client that reconnects sends ``Last-Event-ID`` (or ``after``) and misses nothing.
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
BATCH = 500


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
    name: str | None = Query(None, max_length=200),
    after: int = Query(0, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[SignalView]:
    """Signals with ids above ``after``, oldest first: a token with groups sees those that
    may reach its groups' workflows (a page may hold fewer than ``limit``)."""
    found = services.store.signals(name=name, after_id=after, limit=limit)
    if not principal.reads_everything:
        groups = set(principal.groups)
        found = [s for s in found if s.scope is None or groups & set(s.scope)]
    return [signal_view(s) for s in found]


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
    after: int | None = Query(None, ge=0, le=2**62, description="Start after this event id."),
    last_event_id: str | None = Header(None, max_length=30),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StreamingResponse:
    """Stream committed engine events as they happen, oldest first: those of the runs the
    caller may read (its groups' workflows, unless it reads everything)."""
    if run_id is not None:
        run_id = await anyio.to_thread.run_sync(services.authorize_run, principal, "viewer", run_id)
    cursor = after if after is not None else _parse_id(last_event_id)
    stopping: threading.Event | None = request.app.state.stopping
    readable = None if principal.reads_everything or run_id else _RunFilter(services, principal)
    return StreamingResponse(
        _events(request, services, run_id, cursor, stopping, readable),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _parse_id(value: str | None) -> int:
    try:
        return max(int(value), 0) if value else 0
    except ValueError:
        return 0


class _RunFilter:
    """Which runs' events a principal may see (remembered per run for the stream's life)."""

    def __init__(self, services: Services, principal: Principal) -> None:
        self.services = services
        self.principal = principal
        self.seen: dict[str, bool] = {}

    def __call__(self, records: list[EventRecord]) -> list[EventRecord]:
        for record in records:
            if record.run_id not in self.seen:
                if len(self.seen) > 10_000:
                    self.seen.clear()
                self.seen[record.run_id] = self.services.may_read_run(self.principal, record.run_id)
        return [r for r in records if self.seen[r.run_id]]


def _read(
    services: Services,
    run_id: str | None,
    cursor: int,
    readable: _RunFilter | None = None,
) -> tuple[list[EventRecord], int]:
    batch = services.store.events(run_id, after_id=cursor, limit=BATCH)
    last = max((r.id or 0 for r in batch), default=cursor)
    return (readable(batch) if readable else batch), last


async def _events(
    request: Request,
    services: Services,
    run_id: str | None,
    cursor: int,
    stopping: threading.Event | None,
    readable: _RunFilter | None = None,
) -> AsyncIterator[str]:
    yield ": connected\n\n"
    beat = time.monotonic()
    while not (stopping is not None and stopping.is_set()):
        batch, last = await anyio.to_thread.run_sync(_read, services, run_id, cursor, readable)
        moved = last > cursor
        cursor = last
        for record in batch:
            yield _frame(record)
        if moved:
            beat = time.monotonic()
            continue
        if await request.is_disconnected():
            return
        if time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)
