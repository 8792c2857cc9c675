"""``GET /events``: where a stream starts, and that it replays no history by default."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from kaon.api import routes_events
from kaon.api.deps import Services
from kaon.api.feed_hub import FeedHub
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.store.base import EventRecord, WriteBatch


class _Request:
    async def is_disconnected(self) -> bool:
        return False


def _event(services: Services, run_id: str) -> None:
    services.store.write(WriteBatch(events=[EventRecord(run_id, "progress", time.time(), {})]))


def _first_frame(services: Services, cursor: int) -> str:
    stopping = threading.Event()

    async def first() -> str:
        stream = routes_events._events(_Request(), services, None, cursor, stopping)  # type: ignore[arg-type]
        async for frame in stream:
            if frame.startswith("id: "):
                stopping.set()
                return frame
        return ""

    writer = threading.Timer(0.3, _event, (services, "new"))
    writer.start()
    try:
        return anyio.run(first)
    finally:
        writer.join()  # its commit's last steps end before the store closes


def test_a_new_follower_starts_from_now_and_a_run_follower_from_its_start(
    services: Services,
) -> None:
    for _ in range(3):
        _event(services, "old")
    head = services.store.last_event_id()
    assert head == 3
    assert routes_events.start_cursor(services, None, None, None) == head
    assert routes_events.start_cursor(services, "old", None, None) == 0
    # A browser reconnects to the URL it opened (``after`` in it) with the last id it got.
    assert routes_events.start_cursor(services, None, 1, "2") == 2
    assert routes_events.start_cursor(services, "old", 2, None) == 2
    assert routes_events.start_cursor(services, None, None, "2") == 2
    # A negative id is no id (-1 replayed the whole history); a cursor past the newest
    # event is another feed's: from the newest (it waited for ids to reach it, in silence).
    assert routes_events.start_cursor(services, None, None, "-1") == head
    assert routes_events.start_cursor(services, "old", None, "-1") == 0
    assert routes_events.start_cursor(services, None, 99_999_999, None) == head
    assert routes_events.start_cursor(services, "old", None, "99999999") == head
    frame = _first_frame(services, routes_events.start_cursor(services, None, None, None))
    assert frame.startswith(f"id: {head + 1}\n") and '"run_id":"new"' in frame


def test_a_batch_of_events_is_sent_as_one_chunk(services: Services) -> None:
    # Each chunk a stream yields is one write to the client's socket: a frame per chunk made
    # a burst of 40 events 40 writes, and a client that left mid-burst made asyncio log
    # "socket.send() raised exception." for every write after the fifth.
    services.store.write(
        WriteBatch(events=[EventRecord("burst", "progress", time.time(), {}) for _ in range(40)])
    )
    stopping = threading.Event()

    async def chunks() -> list[str]:
        got: list[str] = []
        stream = routes_events._events(_Request(), services, None, 0, stopping)  # type: ignore[arg-type]
        async for chunk in stream:
            if chunk.startswith("id: "):
                got.append(chunk)
                stopping.set()
        return got

    sent = anyio.run(chunks)
    assert len(sent) == 1
    assert [line for line in sent[0].splitlines() if line.startswith("id: ")] == [
        f"id: {n}" for n in range(1, 41)
    ]


def _started(services: Services, name: str, group: str) -> str:
    """A pending run of a one-step workflow ``name`` owned by ``group``."""
    source = f"name: {name}\nsteps:\n  - id: a\n    shell: echo hi\n"
    admin = LOCAL_PRINCIPAL
    services.registry.push(source, f"{name}.yaml", admin, owner_group=group)
    return services.registry.start_run(name, {}, admin).id


def test_a_stream_stops_showing_a_run_whose_workflow_moved_to_another_group(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An open stream checked only that its token still stood: a reader of group ml kept
    # receiving the events of a run whose workflow an admin had moved to group other, for as
    # long as the stream stayed open, while every other read of that run was refused (403).
    monkeypatch.setattr(routes_events, "REAUTH_S", 0.0)
    _, secret = services.auth.create_token("reader", "viewer", ["ml"])
    reader = services.auth.authenticate(secret)
    moved, kept = _started(services, "moved", "ml"), _started(services, "kept", "ml")
    stopping = threading.Event()

    async def follow() -> tuple[list[str], list[str]]:
        one = routes_events._events(_Request(), services, moved, 0, stopping, secret=secret)  # type: ignore[arg-type]
        every = routes_events._events(
            _Request(),  # type: ignore[arg-type]
            services,
            None,
            services.store.last_event_id(),
            stopping,
            readable=routes_events._RunFilter(services, reader),
            secret=secret,
        )
        assert await one.__anext__() == await every.__anext__() == ": connected\n\n"
        _event(services, moved)
        before = [await one.__anext__(), await every.__anext__()]
        services.registry.update("moved", LOCAL_PRINCIPAL, owner_group="other")
        _event(services, moved)
        _event(services, kept)
        after: list[str] = []
        with anyio.move_on_after(3):
            after.append(await every.__anext__())
            async for frame in one:
                after.append(frame)
        stopping.set()
        return before, after

    before, after = anyio.run(follow)
    assert all(f'"run_id":"{moved}"' in frame for frame in before)
    assert len(after) == 1, after  # the run's own stream ended, the other shows kept's event
    assert f'"run_id":"{kept}"' in after[0] and moved not in after[0]


def test_a_run_token_sees_its_own_runs_events_on_the_stream_of_every_run(
    services: Services,
) -> None:
    """A step's run token reads its own run only: on ``GET /events`` it gets that run's
    events and no other's of its workflow's group, and an admin's stream gets them all."""
    mine, other = _started(services, "mine", "ml"), _started(services, "other", "ml")
    assert services.auth.run_tokens is not None
    token = services.auth.authenticate(services.auth.run_tokens.mint(mine))
    shown = routes_events._RunFilter(services, token)
    records = [EventRecord(run, "progress", 1.0, {}) for run in (mine, other, mine)]
    assert [r.run_id for r in shown(records)] == [mine, mine]
    assert shown(records[1:2]) == []
    everything = routes_events._RunFilter(services, LOCAL_PRINCIPAL)
    assert everything(records) == records


@pytest.mark.parametrize("shared", [True, False], ids=["feed-hub", "store"])
def test_a_run_stream_ends_once_its_run_is_deleted(
    services: Services, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    """A follower of one run (``?run_id=``) whose run was deleted got keep-alives for as long
    as it stayed connected (read from the feed hub: it never learnt that nothing more would
    come), or the stream failed mid-way (read from the store: NotFoundError). The stream
    checks its run when it checks its token, and ends; the reconnection is a 404."""
    monkeypatch.setattr(routes_events, "REAUTH_S", 0.2)
    flow = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"
    principal = services.auth.authenticate(tokens["admin"])
    services.registry.push(flow, "hello.yaml", principal)
    run_id = services.registry.start_run("hello", {}, principal).id
    services.runs.execute(run_id)
    stopping = threading.Event()
    cursor = services.store.last_event_id()
    hub = FeedHub(services.store, stopping) if shared else None
    if hub is not None:
        hub.start()

    async def follow() -> list[str]:
        got: list[str] = []
        stream = routes_events._events(
            _Request(),  # type: ignore[arg-type]
            services,
            run_id,
            cursor,
            stopping,
            hub,
            secret=tokens["admin"],
        )
        with anyio.fail_after(5):
            async for chunk in stream:
                got.append(chunk)
                if len(got) == 1:
                    await anyio.to_thread.run_sync(services.runs.delete_run, run_id)
        return got

    try:
        assert anyio.run(follow) == [": connected\n\n"]
    finally:
        stopping.set()
