"""``kaon paused RUN``: what a run paused at breakpoints holds, to look at before
``kaon continue`` (see :mod:`kaon.model.breakpoints`)."""

from __future__ import annotations

from typing import Any

import typer

from kaon.cli._options import DbOpt, HomeOpt, JsonOpt, RunArg, UrlOpt
from kaon.cli.main import _client, _errors, _print_json, out


def register(app: typer.Typer) -> None:
    """Add the breakpoint commands to ``app``."""
    app.command("paused")(paused)


def paused(
    run_id: RunArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The steps a run holds at breakpoints: the inputs each would receive (paused before)
    or the outputs it produced (paused after); values inline, blobs by hash (`kaon get`).
    Against a server with --url or KAON_URL."""
    from rich.table import Table

    with _errors(as_json), _client(url, db, home) as service:
        full = service.resolve_run_id(run_id)
        shown: list[dict[str, Any]] = [view.model_dump() for view in service.paused_views(full)]
    if as_json:
        _print_json(shown)
        return
    if not shown:
        out.print(f"run {full} holds no step at a breakpoint")
        return
    table = Table("step", "paused", "name", "value")
    for step in shown:
        values = step["inputs"] if step["moment"] == "before" else step["outputs"]
        for name, view in values.items() or [("", {})]:
            table.add_row(step["path"], step["moment"], name, _describe(view))
    out.print(table)
    out.print(f"go on with: kaon continue {full} [--step PATH] [-p key=value]")


def _describe(view: dict[str, Any]) -> str:
    kind = view.get("kind")
    if kind == "value":
        text = repr(view.get("value"))
        return text if len(text) <= 60 else text[:57] + "..."
    if kind == "artifact":
        return f"{view.get('type') or 'blob'} {str(view.get('hash'))[:12]} ({view.get('size')} B)"
    if kind in ("list", "dict"):
        return f"{kind} of {view.get('items')} references"
    return ""
