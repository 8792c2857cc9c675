"""The options of ``kaon`` itself, given before a command: ``kaon --version``."""

from __future__ import annotations

import sys
from typing import Annotated

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
    from kaon.service.project import choose_profile

    choose_profile(profile)
