"""Terminal consoles created on first use, so a command that prints nothing pays no rich import.

:data:`kaon.cli.main.out` and ``err`` are :class:`LazyConsole` objects typed as rich
``Console``: every attribute is the real console's, built the first time one is read.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A rich ``Console`` on stdout or stderr, imported and built when first used."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The real console (built now if it was not yet)."""
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Off a terminal (pipes, CI) rich would wrap at 80 columns: give tables room.
            # Everything printed is plain text: most of it comes from users (step paths,
            # parameter values, errors) and must never be read as rich markup (``[/x]``) or
            # emoji codes (``:x:``). Styling is done with rich ``Text`` objects only.
            self._console = Console(
                stderr=self._stderr,
                highlight=False,
                markup=False,
                emoji=False,
                width=None if stream.isatty() else 160,
            )
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


def lazy_console(*, stderr: bool = False) -> Console:
    """A :class:`LazyConsole`, typed as the ``Console`` it stands for."""
    return cast("Console", LazyConsole(stderr=stderr))


def real_console(console: Console) -> Console:
    """The console behind a lazy one (for rich objects that keep a console, like ``Live``)."""
    return console.console if isinstance(console, LazyConsole) else console
