"""``kaon pool set|list|delete`` and ``kaon permit set|list|delete``: pools with slot and
resource quotas, and tag permits (see :mod:`kaon.model.tenancy`). They work against a server
when ``--url`` or ``KAON_URL`` is set (changes need an admin token), and on the local store
otherwise (as the local admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from kaon.cli._options import DbOpt, HomeOpt, JsonOpt, UrlOpt
from kaon.cli.main import _errors, _print_json, _print_view, out, request_from_options
from kaon.cli.server_cmds import _registry

pool_app = typer.Typer(
    help="Pools: slots and resource quotas shared by steps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
permit_app = typer.Typer(
    help="Tag permits: at most N running attempts carrying a tag, everywhere.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The pool's name.")]
TagArg = Annotated[str, typer.Argument(metavar="TAG", help="The tag.")]


def register(app: typer.Typer) -> None:
    """Add the pool and permit commands to ``app``."""
    app.add_typer(pool_app, name="pool")
    app.add_typer(permit_app, name="permit")


def _memory(text: str | None) -> int | None:
    from kaon.errors import Location, Problem
    from kaon.model.resources import parse_memory

    if text is None:
        return None
    problems: list[Problem] = []
    found = parse_memory(text, Location(field="--memory"), problems)
    if found is None:
        raise typer.BadParameter(problems[0].message if problems else "bad memory")
    return found


@pool_app.command("set")
def pool_set(
    name: NameArg,
    slots: Annotated[
        int,
        typer.Option("--slots", min=0, metavar="N", help="Attempts of the pool running at once."),
    ],
    cpus: Annotated[
        float | None,
        typer.Option("--cpus", min=0, metavar="N", help="CPUs asked, together."),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", metavar="BYTES", help="Memory (bytes, or 64Gi, 500G)."),
    ] = None,
    gpus: Annotated[
        float | None,
        typer.Option("--gpus", min=0, metavar="N", help="GPUs asked, together."),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or change a pool (admin). Running attempts keep their slots."""
    from kaon.service.pools import PoolRequest

    with _errors(as_json):
        request = request_from_options(
            PoolRequest,
            {"slots": "--slots", "cpus": "--cpus", "memory": "--memory", "gpus": "--gpus"},
            slots=slots,
            cpus=cpus,
            memory=_memory(memory),
            gpus=gpus,
        )
    with _errors(as_json), _registry(url, db, home, create=True) as registry:
        view = registry.set_pool(name, request)
    _print_view(view, as_json, f"pool {view.name}: {view.used}/{view.slots} slots used")


@pool_app.command("list")
def pool_list(
    url: UrlOpt = None, db: DbOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """List pools: slots used/limit, quotas used/limit, slots used per owner group."""
    with _errors(as_json), _registry(url, db, home) as registry:
        views = registry.pools()
    if as_json:
        _print_json([v.model_dump(mode="json") for v in views])
        return
    for v in views:
        parts = [f"{v.name}  slots {v.used}/{v.slots}"]
        for label, used, limit, unit in (
            ("cpus", v.used_cpus, v.cpus, 1),
            ("memory", v.used_memory, v.memory, 2**30),
            ("gpus", v.used_gpus, v.gpus, 1),
        ):
            if limit is not None:
                shown = "Gi" if unit > 1 else ""
                parts.append(f"{label} {used / unit:g}{shown}/{limit / unit:g}{shown}")
        if v.by_group:
            groups = ",".join(f"{g or '-'}={n}" for g, n in sorted(v.by_group.items()))
            parts.append(f"groups {groups}")
        out.print("  ".join(parts))


@pool_app.command("delete")
def pool_delete(
    name: NameArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a pool (admin). New runs naming it are refused."""
    with _errors(as_json), _registry(url, db, home) as registry:
        registry.delete_pool(name)
    if as_json:
        _print_json({"deleted": name})
    else:
        out.print(f"deleted pool {name}")


@permit_app.command("set")
def permit_set(
    tag: TagArg,
    most: Annotated[
        int,
        typer.Option("--max", min=0, metavar="N", help="Attempts carrying the tag at once."),
    ],
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or change a tag permit (admin): across every workflow, run and engine."""
    from kaon.service.pools import PermitRequest

    with _errors(as_json):
        request = request_from_options(PermitRequest, {"max": "--max"}, max=most)
    with _errors(as_json), _registry(url, db, home, create=True) as registry:
        view = registry.set_permit(tag, request)
    _print_view(view, as_json, f"permit {view.tag}: {view.used}/{view.max} used")


@permit_app.command("list")
def permit_list(
    url: UrlOpt = None, db: DbOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """List tag permits: attempts carrying each tag running now / allowed."""
    with _errors(as_json), _registry(url, db, home) as registry:
        views = registry.permits()
    if as_json:
        _print_json([v.model_dump(mode="json") for v in views])
        return
    for v in views:
        out.print(f"{v.tag}  {v.used}/{v.max}")


@permit_app.command("delete")
def permit_delete(
    tag: TagArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a tag permit (admin): the tag no longer limits anything."""
    with _errors(as_json), _registry(url, db, home) as registry:
        registry.delete_permit(tag)
    if as_json:
        _print_json({"deleted": tag})
    else:
        out.print(f"deleted permit {tag}")
