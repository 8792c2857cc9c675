"""``kaon config show``: the effective settings and where each came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kaon.cli._options import JsonOpt
from kaon.cli.main import _errors, _print_json, out

config_app = typer.Typer(
    help="The project's configuration (kaon.toml or [tool.kaon] in pyproject.toml).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@config_app.command("show")
def config_show(
    as_json: JsonOpt = False,
    reveal: Annotated[
        bool, typer.Option("--show-token", help="Print the token instead of hiding it.")
    ] = False,
) -> None:
    """Print the effective settings and the source of each: an option, a variable, the
    project's file or profile, or the default.

    Example: kaon --profile prod config show
    """
    from kaon.service.project import SETTINGS, active_profile, find_project, resolve
    from kaon.store import default_store_url

    with _errors(as_json):
        project = find_project()
        resolved = resolve()
        profile, chosen_by = active_profile()
    home = Path(resolved["home"].value)
    defaults = {
        "db": default_store_url(home),
        "artifacts": str((home / "artifacts").absolute()),
        "executor": "process",
    }
    rows: list[dict[str, Any]] = []
    for name, item in resolved.items():
        value, source = item.value, item.source
        if value is None and name in defaults:
            value = defaults[name]
        if name == "token" and value and not reveal:
            value = "(set, hidden)"
        rows.append({"name": name, "value": value, "source": source, "about": SETTINGS[name][2]})
    document = {
        "project": None
        if project is None
        else {
            "file": str(project.file),
            "root": str(project.root),
            "profiles": sorted(project.profiles),
        },
        "profile": profile,
        "profile_source": chosen_by or None,
        "settings": rows,
    }
    if as_json:
        _print_json(document)
        return
    where = f"{project.label} (root {project.root})" if project else "none found"
    out.print(f"project: {where}", soft_wrap=True)
    out.print(f"profile: {profile} ({chosen_by})" if profile else "profile: none")
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        shown = "-" if row["value"] is None else row["value"]
        out.print(f"  {row['name']:<{width}}  {shown}  [{row['source']}]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``kaon config`` to ``app``."""
    app.add_typer(config_app, name="config")
