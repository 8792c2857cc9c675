"""Commands of the server and the workflow registry: ``kaon server``, ``push``, ``versions``,
``activate``, ``deactivate``, ``workflow show|set``, ``token create``, ``signal``.

Registry commands work against a server when ``--url`` or ``KAON_URL`` is set (with the
token in ``KAON_TOKEN``), and on the local store otherwise (as the local admin).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from kaon.cli._options import (
    ArtifactsOpt,
    DbOpt,
    ExecOpt,
    HomeOpt,
    JsonOpt,
    RayAddressOpt,
    UrlOpt,
    WorkersOpt,
    WorkflowArg,
)
from kaon.cli._text import shown_value
from kaon.cli.main import _errors, _print_json, _print_view, out
from kaon.service.limits import MAX_VERSION

if TYPE_CHECKING:  # imported by the commands that use them (a light start-up)
    from kaon.service.client import LocalRegistry
    from kaon.service.remote import RemoteService

ExpiresOpt = Annotated[
    str | None,
    typer.Option(
        "--expires-in",
        metavar="DURATION",
        help="Lifetime: seconds, or 30m, 12h, 7d (default: none).",
    ),
]


def _groups(groups: list[str] | None) -> list[str] | None:
    """``--group`` values, checked by the owner group rule (:mod:`kaon.model.owner_groups`)
    before anything is sent or stored: exit 2 naming the option."""
    from kaon.model.owner_groups import group_problem

    for group in groups or []:
        if (why := group_problem(group)) is not None:
            raise typer.BadParameter(why, param_hint="'--group'")
    return groups


def _group(group: str | None) -> str | None:
    """A ``--group`` given once (a push's owner group), checked as :func:`_groups` does."""
    _groups(None if group is None else [group])
    return group


GroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group", "-g", metavar="GROUP", help="An owner group (repeatable).", callback=_groups
    ),
]


def _registry(
    url: str | None, db: str | None, home: str | None, *, create: bool = False
) -> RemoteService | LocalRegistry:
    """The registry; only commands that write pass ``create`` (see open_store)."""
    from kaon.service.client import open_registry
    from kaon.service.settings import Settings

    settings = Settings.from_env(home=home, db_url=db, create_store=create)
    return open_registry(url, settings, local_options={"--db": db, "--home": home})


def _assigned(assignments: list[str]) -> dict[str, Any]:
    """``name=value`` pairs, each value JSON or else text."""
    from kaon.model.params import parse_assignments

    return {k: _json_or_text(v) for k, v in parse_assignments(assignments).items()}


def _json_or_text(value: str) -> Any:
    """``3`` -> 3, ``true`` -> True, ``null`` -> None, ``[1,2]`` -> [1, 2]; else the text."""
    from kaon.model.params import strict_json

    try:
        return strict_json(value)  # NaN and Infinity stay text: they are not JSON
    except ValueError:
        return value


def server(
    host: Annotated[
        str,
        typer.Option("--host", metavar="ADDRESS", envvar="KAON_HOST", help="Address to listen on."),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="PORT",
            min=0,
            max=65535,
            envvar="KAON_PORT",
            help="Port to listen on.",
        ),
    ] = 8420,
    db: DbOpt = None,
    home: HomeOpt = None,
    executor: ExecOpt = None,
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    artifacts: ArtifactsOpt = None,
    sandbox: Annotated[
        Literal["auto", "on", "off"] | None,
        typer.Option(
            "--sandbox",
            help="Run steps in a bubblewrap sandbox: auto (default: when bwrap is installed), "
            "on or off. Also KAON_SANDBOX.",
        ),
    ] = None,
    bootstrap_token: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-token",
            metavar="NAME",
            help="On first start (no token yet), create an admin token with this name and "
            "print it.",
        ),
    ] = None,
    metrics_public: Annotated[
        bool,
        typer.Option(
            "--metrics-public",
            help="Serve /metrics without a token (for a Prometheus on a private network).",
        ),
    ] = False,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            metavar="SECONDS",
            min=0.5,
            envvar="KAON_LEASE_TTL",
            help="Seconds a run's lease lasts without renewal: how soon another replica takes "
            "over the runs of one that stopped.",
        ),
    ] = 30.0,
    max_runs: Annotated[
        int,
        typer.Option(
            "--max-runs",
            min=1,
            metavar="N",
            envvar="KAON_MAX_RUNS",
            help="Runs this replica's engine holds at once (waiting steps included); more "
            "wait in the queue, oldest first.",
        ),
    ] = 1000,
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            metavar="AGE",
            envvar="KAON_RETENTION",
            help="Delete finished runs that ended longer ago than AGE (e.g. 90d), a batch at a "
            "time in the background; off by default.",
        ),
    ] = None,
    retention_keep_last: Annotated[
        int,
        typer.Option(
            "--retention-keep-last",
            metavar="N",
            min=0,
            envvar="KAON_RETENTION_KEEP_LAST",
            help="With --retention: keep the N newest finished runs of each workflow, "
            "whatever their age.",
        ),
    ] = 0,
) -> None:
    """Serve the HTTP API, drive runs and fire triggers until SIGTERM (exit 0)."""
    from kaon.dsl.durations import parse_duration
    from kaon.errors import Location
    from kaon.server import ServerOptions, serve
    from kaon.service.settings import Settings

    with _errors():
        retention_s = None
        if retention is not None and retention.strip().lower() not in ("", "off"):
            retention_s = parse_duration(retention, Location(field="--retention"))
    options = ServerOptions(
        host=host,
        port=port,
        bootstrap_token=bootstrap_token,
        lease_ttl_s=lease_ttl,
        max_runs=max_runs,
        metrics_public=metrics_public,
        retention_s=retention_s,
        retention_keep_last=retention_keep_last,
    )
    with _errors():
        settings = Settings.from_env(
            home=home,
            db_url=db,
            executor=executor,
            workers=workers,
            artifact_url=artifacts,
            sandbox=sandbox,
            ray_address=ray_address,
        )
        from kaon.service.push_sandbox import SandboxLimits

        SandboxLimits()  # KAON_PUSH_TIMEOUT_S, KAON_PUSH_MEMORY_MB: refused before anything starts
        code = serve(settings, options, sys.stdout)
    raise typer.Exit(code)


def push(
    target: Annotated[
        str, typer.Argument(metavar="FILE[:WORKFLOW]", help="FILE[:WORKFLOW] (.py, .yaml or .yml)")
    ],
    no_activate: Annotated[
        bool, typer.Option("--no-activate", help="Keep the active version as it is.")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            "-g",
            metavar="GROUP",
            help="Owner group of a new workflow.",
            callback=_group,
        ),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a workflow and store it as a new version (identical content: no-op)."""
    with _errors(as_json), _registry(url, db, home, create=True) as registry:
        result = registry.push(target, activate=not no_activate, owner_group=group)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    what = "new version" if result.created else "unchanged, version"
    out.print(
        f"{result.workflow}: {what} {result.version} (active: {result.active_version}) "
        f"{result.definition_hash[:12]}"
    )


def versions(
    workflow: WorkflowArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a workflow's versions (the active one marked *)."""
    with _errors(as_json), _registry(url, db, home) as registry:
        found = registry.versions(workflow)
    if as_json:
        _print_json([v.model_dump(mode="json") for v in found])
        return
    for v in found:
        mark = "*" if v.active else " "
        out.print(
            f"{mark} {v.version:>4}  {v.definition_hash[:12]}  {v.source_name}  {v.created_by}"
        )


def activate(
    workflow: WorkflowArg,
    version: Annotated[
        int, typer.Argument(metavar="VERSION", min=1, max=MAX_VERSION, help="Version number.")
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a version the one new runs use."""
    with _errors(as_json), _registry(url, db, home) as registry:
        view = registry.activate(workflow, version)
    _print_view(view, as_json, f"{view.name}: active version {view.active_version}")


def deactivate(
    workflow: WorkflowArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deactivate a workflow: triggers stop starting it."""
    with _errors(as_json), _registry(url, db, home) as registry:
        view = registry.deactivate(workflow)
    _print_view(view, as_json, f"{view.name}: deactivated")


workflow_app = typer.Typer(
    help="Show or change a registered workflow.", no_args_is_help=True, rich_markup_mode=None
)


@workflow_app.command("show")
def workflow_show(
    workflow: WorkflowArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a workflow: active version, owner group, properties."""
    with _errors(as_json), _registry(url, db, home) as registry:
        view = registry.workflow(workflow)
    if as_json:
        _print_json(view.model_dump(mode="json"))
        return
    out.print(f"workflow {view.name}")
    out.print(f"  active version: {view.active_version}  (latest {view.latest_version})")
    out.print(f"  owner group:    {view.owner_group}")
    for key, value in sorted(view.properties.items()):
        out.print(f"  {key}: {shown_value(value)}")


@workflow_app.command("set")
def workflow_set(
    workflow: WorkflowArg,
    assignments: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...", help="key=value (JSON values; key=null removes a key)."
        ),
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change properties (run_strategy, concurrency, alerts, ...; owner_group) without a
    new version."""
    with _errors(as_json), _registry(url, db, home) as registry:
        values = _assigned(assignments)
        group = values.pop("owner_group", None)
        view = registry.update_workflow(workflow, values, str(group) if group else None)
    _print_view(
        view,
        as_json,
        f"{view.name}: {shown_value(view.properties)} (owner group {view.owner_group})",
    )


token_app = typer.Typer(help="API tokens.", no_args_is_help=True, rich_markup_mode=None)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what the token is for.")],
    role: Annotated[
        str, typer.Option("--role", "-r", metavar="ROLE", help="viewer, operator, owner or admin.")
    ] = "viewer",
    group: GroupOpt = None,
    expires_in: ExpiresOpt = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it (it is shown once; only its hash is stored)."""
    with _errors(as_json), _registry(url, db, home, create=True) as registry:
        try:
            view = registry.create_token(
                name, role, list(group or []), _seconds(expires_in) if expires_in else None
            )
        except ValueError as exc:
            from kaon.cli.main import _fail

            _fail(str(exc))
    if as_json:
        _print_json(view.model_dump(mode="json"))
    else:
        sys.stdout.write(f"{view.token}\n")


@token_app.command("list")
def token_list(
    url: UrlOpt = None, db: DbOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """List tokens: id, name, role, groups, last use, expiry, revocation (never secrets)."""
    with _errors(as_json), _registry(url, db, home) as registry:
        views = registry.list_tokens()
    if as_json:
        _print_json([v.model_dump(mode="json") for v in views])
        return
    now = time.time()
    for v in views:
        if v.revoked_at:
            state = "revoked"
        elif v.expires_at is not None and v.expires_at <= now:
            state = "expired"  # the server refuses it: "API token ... expired"
        else:
            state = "live"
        used = _when(v.last_used_at)
        expires = _when(v.expires_at) if v.expires_at else "never"
        groups = ",".join(v.groups) or "-"
        out.print(
            f"{v.id}  {v.name}  {v.role}  groups={groups}  {state}  used={used}  expires={expires}"
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The token's id (see `kaon token list`).")
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: it stops working at once."""
    with _errors(as_json), _registry(url, db, home) as registry:
        registry.revoke_token(token_id)
    if as_json:
        _print_json({"revoked": token_id})
    else:
        out.print(f"revoked {token_id}")


@token_app.command("rotate")
def token_rotate(
    token_id: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The token's id (see `kaon token list`).")
    ],
    expires_in: ExpiresOpt = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a token a new secret and print it; the old secret stops working at once."""
    with _errors(as_json), _registry(url, db, home) as registry:
        view = registry.rotate_token(token_id, _seconds(expires_in) if expires_in else None)
    if as_json:
        _print_json(view.model_dump(mode="json"))
    else:
        sys.stdout.write(f"{view.token}\n")


def audit(
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="TARGET", help="workflow:NAME, run:ID, token:ID, ..."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", metavar="NAME", help="A token's name (names are not unique)."),
    ] = None,
    token_id: Annotated[
        str | None,
        typer.Option("--token-id", metavar="TOKEN", help="A token's id (see `kaon token list`)."),
    ] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, metavar="ID", help="Entries after this id.")
    ] = 0,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=1000, metavar="N", help="At most this many entries."
        ),
    ] = 100,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail (admin), oldest first: who did what, by which token."""
    with _errors(as_json), _registry(url, db, home) as registry:
        views = registry.audit(
            target=target, actor=actor, token_id=token_id, after=after, limit=limit
        )
    if as_json:
        _print_json([v.model_dump(mode="json") for v in views])
        return
    for v in views:
        by = f"{v.actor} ({v.token_id})" if v.token_id else v.actor
        out.print(f"{v.id}  {_when(v.at)}  {by}  {v.action}  {v.target}")


def _seconds(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    unit = units.get(text[-1:].lower())
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use seconds or a number with s, m, h or d") from None
    if not value > 0:
        raise typer.BadParameter("--expires-in must be positive")
    return value


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def signal(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Signal name.")],
    params: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE...", help="key=value parameters (JSON values)."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a signal with parameters: signal triggers and waiting steps react to it."""
    with _errors(as_json), _registry(url, db, home, create=True) as registry:
        values = _assigned(params or [])
        view = registry.send_signal(name, values)
    _print_view(view, as_json, f"signal {view.name} #{view.id} {shown_value(view.params)}")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``kaon`` app."""
    app.command()(server)
    app.command()(push)
    app.command()(versions)
    app.command()(activate)
    app.command()(deactivate)
    app.command()(signal)
    app.add_typer(workflow_app, name="workflow")
    app.add_typer(token_app, name="token")
    app.command()(audit)
