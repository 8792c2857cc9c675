"""The options and arguments several ``kaon`` commands share, defined once.

A command declares ``db: DbOpt = None`` or ``run_id: RunArg``; help text, metavars and
choices stay the same everywhere. Only typer and typing are imported here (start-up).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from typer.core import TyperArgument


def _argument_type(self: TyperArgument, ctx: Any) -> str | None:
    """No type tag after an argument's name in help: ``RUN  Run id...``, not typer 0.29's
    ``RUN <str>`` (its metavar, RUN, already says what to give)."""
    return None


# Typer offers no setting for this; its Arguments section calls this method alone.
setattr(TyperArgument, "display_type_rich", _argument_type)  # noqa: B010

DbOpt = Annotated[
    str | None,
    typer.Option("--db", metavar="URL", help="State store URL (default: sqlite in KAON_HOME)."),
]
HomeOpt = Annotated[
    str | None,
    typer.Option("--home", metavar="DIR", help="Kaon's folder (default: ./.kaon or KAON_HOME)."),
]
ExecOpt = Annotated[
    Literal["process", "inline", "ray"] | None,
    typer.Option(
        "--executor",
        "-e",
        help="Where steps run: worker processes (default), threads of this process, or a Ray "
        "cluster (ray, with the ray extra).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="HOST:PORT",
        help="The Ray cluster of the ray executor (head host:port); default KAON_RAY_ADDRESS, "
        "else a local cluster started on demand.",
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", metavar="N", min=1, help="Worker processes or threads.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="A Kaon server to work against (default: KAON_URL, else the project's; "
        "--url '' works locally whatever they say).",
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No live view or progress lines: the outcome only.")
]
LogsOpt = Annotated[
    bool | None,
    typer.Option(
        "--logs/--no-logs",
        help="Print every step log line as [step] text (default: off a terminal, yes; on a "
        "terminal the live view shows the latest few).",
    ),
]
EventsOpt = Annotated[
    bool,
    typer.Option(
        "--events", help="Print NDJSON: one event per line, then the run's detail (type result)."
    ),
]
ArtifactsOpt = Annotated[
    str | None,
    typer.Option("--artifacts", metavar="URL", help="Artifact store URL (default: KAON_HOME)."),
]

RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix).")]
StepArg = Annotated[
    str, typer.Argument(metavar="STEP", help="Step path, e.g. train or segments[3].train")
]
WorkflowArg = Annotated[str, typer.Argument(metavar="WORKFLOW", help="Workflow name.")]
WorkflowOpt = Annotated[
    str | None, typer.Option("--workflow", "-w", metavar="WORKFLOW", help="A workflow name.")
]
StepIdOpt = Annotated[str | None, typer.Option("--step", "-s", metavar="STEP", help="A step id.")]
