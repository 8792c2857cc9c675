"""MkDocs hook: the CLI reference is generated from the ``kaon`` command itself.

A page holding ``<!-- kaon-cli-reference -->`` gets, in its place, the help of every command
and subcommand (usage, description, options), read from the Typer app as ``kaon --help``
prints it. Nothing is written by hand, so the page cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- kaon-cli-reference -->"


def _commands(command: Any, path: list[str], ctx: Any) -> list[tuple[list[str], Any, Any]]:
    found = [(path, command, ctx)]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            found += _commands(sub, [*path, name], type(ctx)(sub, parent=ctx, info_name=name))
    return found


def reference() -> str:
    """The Markdown of every command's help."""
    import typer

    from kaon.cli.main import app

    root = typer.main.get_command(app)
    parts: list[str] = []
    for path, command, ctx in _commands(root, ["kaon"], typer.Context(root, info_name="kaon")):
        level = "#" * min(len(path) + 1, 4)
        parts.append(f"{level} `{' '.join(path)}`\n")
        parts.append("```text\n" + command.get_help(ctx).rstrip() + "\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
