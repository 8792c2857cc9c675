"""The options of ``kaon`` itself, given before a command: ``kaon --version``."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer


def _print_version(value: bool) -> None:
    if value:
        from kaon._version import __version__

        sys.stdout.write(f"kaon {__version__}\n")
        raise typer.Exit()


def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Kaon's version and exit.",
        ),
    ] = False,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"] | None,
        typer.Option(
            "--log-level",
            help="How much Kaon logs on stderr (default: KAON_LOG_LEVEL, else warning; "
            "info for kaon server). KAON_LOG_FORMAT=json logs JSON lines.",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            metavar="NAME",
            help="Use this profile of the project's kaon.toml (default: KAON_PROFILE).",
        ),
    ] = None,
) -> None:
    """Kaon: orchestrate and schedule machine-learning pipelines.

    Example: kaon run examples/recsys/flow.py -p min_ratings=30
    """
    from kaon.log_config import choose_level, configure_logging
    from kaon.service.project import choose_profile

    choose_profile(profile)
    choose_level(log_level)
    from kaon.cli.main import _errors

    with _errors():
        configure_logging()
