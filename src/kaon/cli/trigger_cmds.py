"""Trigger commands: ``kaon backfill``, ``backfills``, ``backfill-cancel``, ``triggers``,
``firings``, ``unblock``.

Against a server when ``--url`` or ``KAON_URL`` is set (token in ``KAON_TOKEN``); on the
local store otherwise, where a backfill is recorded and its runs start when ``kaon server``
runs on that store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from kaon.cli._options import DbOpt, HomeOpt, JsonOpt, UrlOpt
from kaon.cli.main import _errors, _print_json, out, request_from_options

if TYPE_CHECKING:  # imported where used (a light start-up)
    from kaon.service.triggers import (
        BackfillRequest,
        BackfillView,
        FiringView,
        TriggerOperations,
        TriggerView,
        UnblockView,
    )


class _Remote:
    """The trigger routes of a server."""

    def __init__(self, url: str) -> None:
        from kaon.service.remote import RemoteService

        self.service = RemoteService(url)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        from kaon.errors import ConfigurationError
        from kaon.service.remote import raise_for_answer

        try:
            response = self.service.http.request(method, path, **kwargs)
        except Exception as exc:  # httpx transport errors
            raise ConfigurationError(f"cannot reach the Kaon server: {exc}") from exc
        raise_for_answer(response)
        return response.json()

    def close(self) -> None:
        self.service.close()


class _Client:
    """Trigger operations, remote or local, with one shape."""

    def __init__(self, url: str | None, db: str | None, home: str | None) -> None:
        from kaon.service.client import choose_server
        from kaon.service.settings import Settings
        from kaon.service.triggers import TriggerOperations

        found = choose_server(url, {"--db": db, "--home": home})
        self.remote = _Remote(found) if found else None
        self.local: TriggerOperations | None = None
        self._local_store: Any = None
        if self.remote is None:
            from kaon.service.local import LocalService

            settings = Settings.from_env(home=home, db_url=db, create_store=False)
            self._local_store = LocalService(settings)
            from kaon.store.sql import SQLStore

            store = self._local_store.store
            assert isinstance(store, SQLStore)
            self.local = TriggerOperations(store)

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
        if self._local_store is not None:
            self._local_store.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_backfill(self, request: BackfillRequest) -> BackfillView:
        if self.remote is not None:
            from kaon.service.triggers import BackfillView

            data = self.remote.call("POST", "/backfills", json=request.model_dump())
            return BackfillView.model_validate(data)
        assert self.local is not None
        return self.local.start_backfill(request, by="local")

    def backfills(
        self, workflow: str | None, status: str | None, *, page: int | None = None
    ) -> list[BackfillView]:
        if self.remote is not None:
            from kaon.service.triggers import BackfillView

            query = {k: v for k, v in (("workflow", workflow), ("status", status)) if v}
            data = self.remote.service.pages("/backfills", query, "before", page=page)
            return [BackfillView.model_validate(item) for item in data]
        assert self.local is not None
        return self.local.backfills(workflow=workflow, status=status)

    def cancel_backfill(self, backfill_id: str) -> BackfillView:
        if self.remote is not None:
            from kaon.service.remote import segment
            from kaon.service.triggers import BackfillView

            data = self.remote.call("POST", f"/backfills/{segment(backfill_id, 'backfill')}/cancel")
            return BackfillView.model_validate(data)
        assert self.local is not None
        return self.local.cancel_backfill(backfill_id, by="local")

    def triggers(self, workflow: str | None, *, page: int | None = None) -> list[TriggerView]:
        if self.remote is not None:
            from kaon.service.triggers import TriggerView

            query = {"workflow": workflow} if workflow else {}
            data = self.remote.service.pages("/triggers", query, "after", page=page)
            return [TriggerView.model_validate(item) for item in data]
        assert self.local is not None
        return self.local.list_triggers(workflow)

    def firings(
        self, workflow: str | None, status: str | None, before: int | None, limit: int
    ) -> list[FiringView]:
        if self.remote is not None:
            from kaon.service.triggers import FiringView

            query: dict[str, Any] = {"limit": limit}
            for key, value in (("workflow", workflow), ("status", status), ("before", before)):
                if value is not None:
                    query[key] = value
            data = self.remote.call("GET", "/triggers/firings", params=query)
            return [FiringView.model_validate(item) for item in data]
        assert self.local is not None
        return self.local.firings(workflow=workflow, status=status, before=before, limit=limit)

    def unblock(self, workflow: str) -> UnblockView:
        if self.remote is not None:
            from kaon.service.remote import segment
            from kaon.service.triggers import UnblockView

            data = self.remote.call("POST", f"/workflows/{segment(workflow, 'workflow')}/unblock")
            return UnblockView.model_validate(data)
        assert self.local is not None
        return self.local.unblock(workflow)


def _values(items: list[str] | None) -> dict[str, Any]:
    from kaon.cli.server_cmds import _assigned

    return _assigned(items or [])


def _show_backfill(view: BackfillView) -> None:
    from rich.text import Text

    skipped = f", {view.skipped} skipped" if view.skipped else ""
    out.print(
        Text.assemble(
            f"{view.id}  {view.workflow}  ",
            (view.status, "bold"),
            f"  {view.started}/{view.total} "
            f"started{skipped}  ({view.start} .. {view.end}, {view.concurrency} at a time)",
        )
    )
    if view.requested_end is not None:
        out.print(
            Text(
                f"  end cut to now ({view.end}; asked {view.requested_end}): a backfill runs "
                "past slots, the cron trigger the ones to come"
            )
        )
    for slot in view.skipped_slots:
        out.print(Text(f"  skipped {slot.slot}: {slot.error}"))
    if view.skipped > len(view.skipped_slots):
        out.print(Text(f"  ... and {view.skipped - len(view.skipped_slots)} more skipped"))


def backfill(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="A registered workflow.")],
    start: Annotated[str, typer.Option("--start", metavar="DATE", help="ISO date or date-time.")],
    end: Annotated[
        str, typer.Option("--end", metavar="DATE", help="ISO date or date-time (inclusive).")
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", metavar="N", min=1, max=1000, help="Runs open at once."
        ),
    ] = 1,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="A fixed parameter: key=value."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", metavar="EXPRESSION", help="Schedule (default: the workflow's cron)."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", metavar="ZONE", help="IANA time zone.")
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start one run per schedule slot between --start and --end (a sliding window)."""
    from kaon.service.triggers import BackfillRequest

    with _errors(as_json):
        request = request_from_options(
            BackfillRequest,
            {
                "workflow": "WORKFLOW",
                "start": "--start",
                "end": "--end",
                "concurrency": "--concurrency",
                "params": "--param",
                "cron": "--cron",
                "timezone": "--timezone",
            },
            workflow=workflow,
            start=start,
            end=end,
            concurrency=concurrency,
            params=_values(param),
            cron=cron,
            timezone=timezone,
        )
    with _errors(as_json), _Client(url, db, home) as client:
        view = client.start_backfill(request)
    if as_json:
        _print_json(view.model_dump())
    else:
        _show_backfill(view)


def backfills(
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", "-w", metavar="WORKFLOW", help="Only this workflow's backfills."
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", "-s", metavar="STATUS", help="Only backfills in this status."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List backfills, newest first."""
    with _errors(as_json), _Client(url, db, home) as client:
        views = client.backfills(workflow, status)
    if as_json:
        _print_json([v.model_dump() for v in views])
        return
    for view in views:
        _show_backfill(view)
    if not views:
        out.print("no backfills")


def backfill_cancel(
    backfill_id: Annotated[
        str, typer.Argument(metavar="BACKFILL", help="The backfill's id (bf-...).")
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a backfill: nothing more starts, its open runs are cancelled or killed."""
    with _errors(as_json), _Client(url, db, home) as client:
        view = client.cancel_backfill(backfill_id)
    if as_json:
        _print_json(view.model_dump())
    else:
        _show_backfill(view)


def triggers(
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", metavar="WORKFLOW", help="Only this workflow's triggers."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the triggers of active workflows and when cron triggers fire next."""
    with _errors(as_json), _Client(url, db, home) as client:
        views = client.triggers(workflow)
    if as_json:
        _print_json([v.model_dump() for v in views])
        return
    for view in views:
        when = f"  next {view.next_due}" if view.next_due else ""
        out.print(f"{view.workflow}  {view.description}{when}")
    if not views:
        out.print("no triggers")


def firings(
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", metavar="WORKFLOW", help="Only this workflow's firings."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only firings in this status: claimed, created, finished or dropped.",
        ),
    ] = None,
    before: Annotated[
        int | None,
        typer.Option("--before", metavar="ID", min=1, help="Only firings below this id."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, max=1000, help="At most N.")
    ] = 50,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List what triggers fired, newest first: the run each started, or why none."""
    from kaon.service.triggers import FIRING_STATUSES

    with _errors(as_json):
        if status is not None and status not in FIRING_STATUSES:
            from kaon.errors import ConfigurationError

            raise ConfigurationError(
                f"--status: unknown firing status {status!r} (one of: {', '.join(FIRING_STATUSES)})"
            )
    with _errors(as_json), _Client(url, db, home) as client:
        views = client.firings(workflow, status, before, limit)
    if as_json:
        _print_json([v.model_dump() for v in views])
        return
    from rich.text import Text

    for view in views:
        outcome = view.run_id or (view.error or "no run")
        what = f"  {view.what}" if view.what else ""
        out.print(
            Text(f"#{view.id}  {view.due}  {view.workflow}  {view.kind}{what}  ")
            + Text(view.status, "bold")
            + Text(f"  {outcome}")
        )
    if not views:
        out.print("no firings")


def unblock(
    workflow: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="A strict-sequential workflow.")
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let a strict-sequential workflow start runs again after a failed run."""
    with _errors(as_json), _Client(url, db, home) as client:
        view = client.unblock(workflow)
    if as_json:
        _print_json(view.model_dump())
    else:
        state = "unblocked" if view.was_blocked else "was not blocked"
        out.print(f"{workflow}: {state}")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``kaon`` app."""
    app.command()(backfill)
    app.command()(backfills)
    app.command("backfill-cancel")(backfill_cancel)
    app.command()(triggers)
    app.command()(firings)
    app.command()(unblock)
