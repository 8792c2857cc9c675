"""``kaon artifacts | lineage | get | explain | cache | compare | plot | gc``: the commands that
inspect what runs produced, why steps were reused, and how runs differ.

They register themselves on :data:`kaon.cli.main.app` when this module is imported (the main
module imports it). Each works through :class:`~kaon.service.experiments.Experiments`, or
with ``--url``/``KAON_URL`` through a server's API (the same views, read remotely; ``cache``
and ``gc`` stay local); with ``--json`` each prints the view models of
:mod:`kaon.service.experiment_views`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from kaon.cli._options import (
    ArtifactsOpt,
    DbOpt,
    HomeOpt,
    JsonOpt,
    RunArg,
    StepArg,
    StepIdOpt,
    UrlOpt,
    WorkflowOpt,
)
from kaon.cli._text import cut, shown, shown_value
from kaon.cli.main import _client, _errors, _fail, _print_json, _print_view, _service, app, out
from kaon.dsl.durations import parse_duration
from kaon.errors import ConfigurationError, Location
from kaon.service.limits import COMPARE_ROWS, MAX_COMPARE_ROWS

if TYPE_CHECKING:  # imported where used: rich and the view models cost start-up time
    from rich.text import Text
    from rich.tree import Tree

    from kaon.service.experiment_views import (
        ArtifactView,
        CompareView,
        ExplainView,
        GcView,
        LineageView,
        RunArtifactsView,
    )

cache_app = typer.Typer(
    help="List or invalidate memoized step executions.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(cache_app, name="cache")


def _local_only(command: str, db: str | None, home: str | None) -> None:
    """``kaon cache`` and ``kaon gc`` work on a store directly, never through a server: with a
    server URL in force (``KAON_URL``, a profile's ``url``) and no ``--db``/``--home`` naming
    the store, they would silently read or change the local one, so they refuse (exit 2)."""
    from kaon.service.client import server_url

    if db or home:
        return
    url = server_url()
    if url:
        _fail(
            f"kaon {command} works on a store directly, not through a server, and KAON_URL "
            f"(or the profile's url) points at {url}: run it where the store is, with --home "
            "or --db (or unset KAON_URL to use the local store)"
        )


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _when(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short_type(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _value(value: Any, width: int = 60) -> str:
    return shown_value(value, width)


# -- artifacts, lineage, get ------------------------------------------------------------------


@app.command()
def artifacts(
    run_id: RunArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every artifact of a run and its inline values.

    Blobs show hash, serializer, type and size; outputs reused from a cached step show where
    they came from.
    """
    with _errors(as_json), _client(url, db, home, artifacts=artifacts) as service:
        view = service.experiments.run_artifacts(run_id)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            _render_artifacts(view)


def _render_artifacts(view: RunArtifactsView) -> None:
    from rich.table import Table
    from rich.text import Text

    out.print(Text.assemble(("run ", "bold"), (view.run_id, "cyan"), f"  {view.workflow}"))
    table = Table(box=None, header_style="bold", title="artifacts", title_justify="left")
    for column in (
        "step",
        "output",
        "hash",
        "serializer",
        "type",
        "size",
        "created",
        "reused from",
    ):
        table.add_column(column, no_wrap=column not in ("step", "reused from"))
    for a in view.artifacts:
        table.add_row(
            a.path,
            a.output,
            a.short_hash,
            a.serializer,
            _short_type(a.type),
            _size(a.size),
            _when(a.created_at),
            Text(a.cached_from or "", style="dim"),
        )
    out.print(table if view.artifacts else Text("no artifacts", style="dim"))
    if view.values:
        values = Table(box=None, header_style="bold", title="values", title_justify="left")
        for column in ("step", "output", "value"):
            values.add_column(column, overflow="fold")
        for v in view.values:
            values.add_row(v.path, v.output, _value(v.value, 80))
        out.print(values)


@app.command()
def lineage(
    artifact: Annotated[
        str, typer.Argument(metavar="HASH", help="An artifact's sha256 or a unique prefix.")
    ],
    depth: Annotated[
        int, typer.Option("--depth", "-d", metavar="N", min=0, help="Levels of inputs.")
    ] = 3,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where an artifact came from and which steps used it.

    Its producers (run, step, attempt, foreach item) and the input artifacts they read, up to
    --depth levels; then the step attempts that read it and succeeded, with what they stored.
    """
    from rich.text import Text
    from rich.tree import Tree

    from kaon.service.experiment_views import MAX_CONSUMERS

    with _errors(as_json), _client(url, db, home, artifacts=artifacts) as service:
        view = service.experiments.lineage(artifact, depth=depth)
        if as_json:
            _print_json(view.model_dump(mode="json"))
            return
        tree = Tree(_blob_label(view))
        _lineage_tree(tree, view)
        if view.consumers:
            used = tree.add(Text("used by", style="bold"))
            for c in view.consumers:
                made = f" -> {c.output} ({c.hash[:12]})" if c.output and c.hash else ""
                used.add(Text(f"{c.run_id}  {c.path}{made}"))
            if view.consumers_truncated:
                used.add(Text(f"(the first {MAX_CONSUMERS} step attempts)", style="dim"))
        else:
            tree.add(Text("used by no step that succeeded", style="dim"))
        out.print(tree)


def _blob_label(view: LineageView) -> Text:
    from rich.text import Text

    return Text.assemble(
        (view.hash[:12], "bold cyan"),
        f"  {_short_type(view.type)} {view.serializer} {_size(view.size)}",
    )


def _producer_label(a: ArtifactView) -> str:
    item = f" item {a.item_index}" if a.item_index is not None else ""
    return (
        f"made by {a.run_id}  {a.path}{item} -> {a.output}  "
        f"attempt {a.attempt}  {_when(a.created_at)}"
    )


def _lineage_tree(node: Tree, view: LineageView) -> None:
    from rich.text import Text

    for producer in view.producers:
        node.add(_producer_label(producer))
    if not view.producers:
        node.add(Text("no recorded producer", style="dim"))
    for source in view.sources:
        child = node.add(Text.assemble(("from ", "bold"), _blob_label(source)))
        _lineage_tree(child, source)
    if view.truncated:
        node.add(Text("... more inputs (raise --depth)", style="dim"))


@app.command()
def get(
    target: Annotated[
        str,
        typer.Argument(metavar="HASH|RUN", help="An artifact hash (or prefix), or a run id."),
    ],
    step: Annotated[
        str | None,
        typer.Argument(metavar="STEP", help="With a run id: the step path whose output to fetch."),
    ] = None,
    dest: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Write the value here instead of a preview."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="OUTPUT", help="The output's name (default: all outputs)."),
    ] = None,
    old_name: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="OUTPUT",
            hidden=True,
            help="Deprecated spelling of --name (easily confused with -o, the file).",
        ),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch an artifact (`kaon get HASH`) or a step's output (`kaon get RUN STEP`).

    Example: kaon get RUN prepare --name segments -o segments.parquet

    With -o, files and folders are copied, DataFrames written as Parquet (CSV if PATH ends
    .csv), arrays as .npy, bytes as they are, JSON values as JSON, anything else pickled;
    without -o a preview is printed. A blob whose content does not match its hash is an
    error, never returned.
    """
    with _errors(as_json), _client(url, db, home, artifacts=artifacts) as service:
        if old_name is not None:
            typer.echo("warning: --output is deprecated; use --name", err=True)
        output = name if name is not None else old_name
        if output is not None and step is None:
            typer.echo("error: --name needs a RUN and a STEP", err=True)
            raise typer.Exit(2)
        view = service.experiments.fetch(target, step, output=output, dest=dest)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        elif view.written_to is not None:
            out.print(f"wrote {view.written_to} ({view.format})")
        else:
            out.print(shown(view.preview or ""), markup=False, highlight=False)


# -- memoization ------------------------------------------------------------------------------


@app.command()
def explain(
    run_id: RunArg,
    step: StepArg,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say why a step was a cache hit or miss.

    For a miss: which part of its cache key (code, config, version, an input) changed since
    the nearest earlier execution of the same step.
    """
    with _errors(as_json), _client(url, db, home, artifacts=artifacts) as service:
        view = service.experiments.explain(run_id, step)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            _render_explain(view)


def _digest(value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:23] + "..." if len(text) > 26 else text


def _render_explain(view: ExplainView) -> None:
    from rich.table import Table
    from rich.text import Text

    style = {"hit": "green", "changed": "yellow", "blobs_missing": "yellow"}.get(view.verdict, "")
    out.print(Text.assemble((view.path, "bold"), f" ({view.status}): ", (view.message, style)))
    if view.changes:
        table = Table(box=None, header_style="bold")
        for column in ("changed", "before", "now"):
            table.add_column(column)
        for change in view.changes:
            table.add_row(change.component, _digest(change.old), _digest(change.new))
        out.print(table)
    if view.param_changes:
        out.print(Text("parameters that differ between the two runs:", style="bold"))
        params = Table(box=None, header_style="bold")
        for column in ("parameter", "before", "now"):
            params.add_column(column)
        for p in view.param_changes:
            params.add_row(p.name, _value(p.old), _value(p.new))
        out.print(params)
    for name in view.not_covered:
        out.print(Text(f"not covered: {name}", style="yellow"))
    if view.not_covered:
        out.print("  (the fingerprint cannot see these values: set cache_version to pin them)")


@cache_app.command("list")
def cache_list(
    workflow: WorkflowOpt = None,
    step: StepIdOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="Show at most N entries.")
    ] = 100,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List cache entries, newest first."""
    from rich.table import Table
    from rich.text import Text

    _local_only("cache list", db, home)
    with _errors(as_json), _service(db, home) as service:
        views = service.experiments.cache_list(workflow=workflow, step=step, limit=limit)
        if as_json:
            _print_json([v.model_dump(mode="json") for v in views])
            return
        table = Table(box=None, header_style="bold")
        for column in ("key", "workflow", "step", "from", "outputs", "created"):
            table.add_column(column)
        for v in views:
            table.add_row(
                v.key[:12],
                v.workflow,
                v.step_id,
                f"{v.run_id}:{v.path}",
                ", ".join(v.outputs),
                _when(v.created_at),
            )
        out.print(table if views else Text("no cache entries", style="dim"))


@cache_app.command("clear")
def cache_clear(
    workflow: WorkflowOpt = None,
    step: StepIdOpt = None,
    everything: Annotated[bool, typer.Option("--all", help="Clear every entry.")] = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invalidate cache entries of a workflow and/or step id (or --all).

    Those steps execute again the next time they run.
    """
    _local_only("cache clear", db, home)
    with _errors(as_json), _service(db, home) as service:
        view = service.experiments.cache_clear(workflow=workflow, step=step, everything=everything)
        _print_view(
            view, as_json, f"cleared {view.deleted} cache entr{'y' if view.deleted == 1 else 'ies'}"
        )


# -- comparison -------------------------------------------------------------------------------


@app.command()
def compare(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="Two or more run ids (or prefixes).")
    ],
    all_steps: Annotated[
        bool, typer.Option("--all", help="List every step, not only those that differ.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            metavar="N",
            min=1,
            max=MAX_COMPARE_ROWS,
            help="Metric rows and step rows listed (each); the items' pooled rows come first.",
        ),
    ] = COMPARE_ROWS,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare runs side by side: parameters, metrics and step statuses.

    Metrics are pooled over a foreach's items (mean, count, min, max per run), then listed
    as the last value per step path (each foreach item, the first --limit rows); steps show
    whether they ran, were cached, failed or were skipped (those that differ first).
    Differences are highlighted.
    """
    with _errors(as_json), _client(url, db, home) as service:
        view = service.experiments.compare(run_ids, limit=limit)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            _render_compare(view, all_steps)


def _cell(value: Any, differs: bool) -> Text:
    from rich.text import Text

    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = shown(value) if isinstance(value, str) else _value(value, 30)
    return Text(text, style="bold yellow" if differs else "")


def _render_compare(view: CompareView, all_steps: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    ids = [r.id for r in view.runs]
    head = Table(box=None, header_style="bold")
    head.add_column("")
    for run in view.runs:
        head.add_column(run.id)
    head.add_row("workflow", *[r.workflow for r in view.runs])
    head.add_row("status", *[r.status for r in view.runs])
    for p in view.params:
        head.add_row(
            Text(p.name, style="bold yellow" if p.differs else ""),
            *[_cell(p.values.get(i), p.differs) for i in ids],
        )
    out.print(head)
    pooled = [g for g in view.groups if any(n > 1 for n in g.count.values())]
    if pooled:
        table = Table(
            box=None,
            header_style="bold",
            title="metrics pooled over items (mean, of n)",
            title_justify="left",
        )
        for column in ("group", "metric", *ids):
            table.add_column(column, justify="right" if column in ids else "left")
        for g in pooled:
            cells = [
                _cell(None if g.mean[i] is None else f"{g.mean[i]:.6g} (n={g.count[i]})", g.differs)
                for i in ids
            ]
            table.add_row(g.group, g.name, *cells)
        out.print(table)
    if view.metrics:
        table = Table(
            box=None, header_style="bold", title="metrics (last value)", title_justify="left"
        )
        for column in ("step", "item", "metric", *ids):
            table.add_column(column, justify="right" if column in ids else "left")
        for m in view.metrics:
            item = (
                "" if m.item_index is None else str(m.item if m.item is not None else m.item_index)
            )
            table.add_row(
                m.path,
                cut(shown(item), 20),
                m.name,
                *[_cell(m.values.get(i), m.differs) for i in ids],
            )
        out.print(table)
    if view.metrics_total > len(view.metrics):
        more = view.metrics_total - len(view.metrics)
        out.print(Text(f"... and {more:,} more metric rows (--limit N lists more)", style="dim"))
    listed = [s for s in view.steps if all_steps or s.differs]
    table = Table(box=None, header_style="bold", title="steps", title_justify="left")
    for column in ("step", *ids):
        table.add_column(column)
    for s in listed:
        table.add_row(s.path, *[_cell(s.statuses.get(i), s.differs) for i in ids])
    if listed:
        out.print(table)
    unlisted = view.steps_total - len(listed)
    if unlisted:
        same = view.steps_total - view.steps_differing
        hint = "--all lists them" if not all_steps else "--limit N lists more"
        if not all_steps and view.steps_differing > len(listed):
            hint = "--limit N lists more differing ones, --all the others"
        out.print(
            Text(
                f"{unlisted:,} more step(s) not listed, {same:,} with the same status in every run"
                f" ({hint})",
                style="dim",
            )
        )


@app.command()
def plot(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="One or more run ids (or prefixes).")
    ],
    metric: Annotated[
        str, typer.Option("--metric", "-m", metavar="NAME", help="The metric's name.")
    ],
    dest: Annotated[
        str | None,
        typer.Option("--out", "-o", metavar="FILE", help="PNG file (default: <metric>.png)."),
    ] = None,
    by: Annotated[
        Literal["run", "item", "step"] | None,
        typer.Option("--by", help="x axis: run, item (foreach items) or step."),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            "-s",
            metavar="STEP",
            help="Only this step: a path, a segments[*].train group, or an id.",
        ),
    ] = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plot a metric as a PNG across runs, foreach items, or epochs.

    --by run: the last value in each run; --by item: across the foreach items of a run;
    --by step: over the `step` (epochs) a step reported it with.
    """
    target = dest or f"{metric.replace('/', '_')}.png"
    with _errors(as_json), _client(url, db, home) as service:
        view = service.experiments.plot(run_ids, metric, by=by, step=step, output=target)
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            points = sum(len(s.y) for s in view.series)
            out.print(
                f"wrote {view.output} ({view.title}: {len(view.series)} series, {points} points)"
            )


# -- retention --------------------------------------------------------------------------------


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")
    ] = False,
    min_age: Annotated[
        str,
        typer.Option(
            "--min-age", metavar="AGE", help="Keep blobs younger than this (e.g. 1h, 30m, 0)."
        ),
    ] = "1h",
    runs_older_than: Annotated[
        str | None,
        typer.Option(
            "--runs-older-than",
            metavar="AGE",
            help="First delete finished runs that ended longer ago than this (e.g. 90d, 12h).",
        ),
    ] = None,
    keep_last: Annotated[
        int,
        typer.Option(
            "--keep-last",
            metavar="N",
            min=0,
            help="With --runs-older-than: keep the N newest finished runs of each workflow.",
        ),
    ] = 0,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="WORKFLOW",
            help="With --runs-older-than: delete only this workflow's runs.",
        ),
    ] = None,
    db: DbOpt = None,
    home: HomeOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete artifact blobs that no recorded artifact and no cache entry references.

    Blobs younger than --min-age are kept, so a run writing right now is never robbed.
    With --runs-older-than, finished runs past that age (but the --keep-last newest of each
    workflow) are deleted first, with every row of them, and the blobs they alone used go too.
    """
    _local_only("gc", db, home)
    with _errors(as_json), _service(db, home, artifacts=artifacts) as service:
        seconds = parse_duration(min_age, Location(field="--min-age"))
        runs_age = None
        if runs_older_than is not None:
            runs_age = parse_duration(runs_older_than, Location(field="--runs-older-than"))
        elif keep_last or workflow:
            raise ConfigurationError(
                "--keep-last and --workflow choose runs to delete: add --runs-older-than AGE"
            )
        view = service.experiments.gc(
            dry_run=dry_run,
            min_age_s=seconds,
            runs_older_than_s=runs_age,
            keep_last=keep_last,
            workflow=workflow,
        )
        if as_json:
            _print_json(view.model_dump(mode="json"))
        else:
            _render_gc(view)


def _render_gc(view: GcView) -> None:
    verb = "would delete" if view.dry_run else "deleted"
    if view.runs_older_than_s is not None:
        for run_id in view.runs:
            out.print(f"{verb} run {run_id}")
        for run_id in view.runs_skipped:
            out.print(f"kept run {run_id} for now (an engine holds it, or it was restarted)")
        out.print(f"{verb} {len(view.runs)} run{'' if len(view.runs) == 1 else 's'}")
    out.print(
        f"scanned {view.scanned} blobs: {view.referenced} referenced, {view.young} younger than "
        f"{view.min_age_s:g}s (kept); {verb} {view.deleted} ({_size(view.bytes_freed)})"
    )
    if view.temp_files:
        out.print(
            f"{verb} {view.temp_files} partial file{'' if view.temp_files == 1 else 's'} of "
            f"interrupted writes ({_size(view.temp_bytes)})"
        )
