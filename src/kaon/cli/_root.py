"""The options of ``kaon`` itself, given before a command: ``kaon --version``."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup


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


@contextmanager
def _usage_errors_as_json(args: Sequence[str]) -> Iterator[None]:
    """A usage error (an unknown option, a bad or missing value) of a command line that asks
    for ``--json`` (or ``--events``) is also printed on stdout as the error document every
    other error of such a command prints (on one line for ``--events``, an NDJSON stream's
    last), then shown as usual on stderr."""
    try:
        yield
    except typer.TyperException as exc:
        given = list(args)
        options = given[: given.index("--") if "--" in given else None]
        if "--json" in options or "--events" in options:
            from kaon.cli.main import _print_json, _print_line

            message = exc.format_message()
            code = exc.exit_code
            (_print_json if "--json" in options else _print_line)(
                {
                    "error": {
                        "type": type(exc).__name__,
                        "message": message,
                        "exit_code": code,
                        "problems": [],
                    }
                }
            )
        raise


class RootGroup(TyperGroup):
    """The ``kaon`` group: what it and its commands refuse while reading the command line
    goes through :func:`_usage_errors_as_json` (typer prints it on stderr and exits 2)."""

    _ARGS = "kaon.args"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[self._ARGS] = list(args)
        with _usage_errors_as_json(args):
            parsed: list[str] = super().parse_args(ctx, args)
            return parsed

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_as_json(ctx.meta.get(self._ARGS, ())):
            return super().invoke(ctx)
