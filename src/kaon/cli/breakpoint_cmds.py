"""``kaon paused RUN``: what a run paused at breakpoints holds, to look at before
``kaon continue`` (see :mod:`kaon.model.breakpoints`)."""

from __future__ import annotations

from typing import Any

import typer

from kaon.cli._options import DbOpt, HomeOpt, JsonOpt, RunArg
from kaon.cli.main import _errors, _print_json, _service, out


def register(app: typer.Typer) -> None:
    """Add the breakpoint commands to ``app``."""
    app.command("paused")(paused)


def paused(
    run_id: RunArg,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The steps a run holds at breakpoints: the inputs each would receive (paused before)
    or the outputs it produced (paused after); values inline, blobs by hash (`kaon get`)."""
    from rich.table import Table

    from kaon.service.views import paused_step_view

    with _errors(as_json), _service(db, home) as service:
        full = service.resolve_run_id(run_id)
        held = service.paused_steps(full)
        shown: list[dict[str, Any]] = [
            paused_step_view(step.path, step.moment, step.inputs, step.outputs).model_dump()
            for step in held
        ]
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
