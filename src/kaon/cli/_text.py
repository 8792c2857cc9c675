"""Text from a run (log lines, error messages, outputs) made safe for a terminal.

A step decides what it prints. An escape sequence in it, passed to the user's terminal, can
clear the screen, move the cursor over earlier lines, retitle the window or write the
clipboard (OSC 52). So every piece of a run's text the CLI shows on a terminal goes through
:func:`shown`, which writes control characters as ``\\xNN`` (tabs and newlines are kept).
``--json`` output is data, not display, and keeps the text as stored.
"""

from __future__ import annotations

_CONTROL = {
    code: f"\\x{code:02x}"
    for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
    if code not in (0x09, 0x0A)
}


def shown(text: str) -> str:
    """``text`` with its control characters (C0 but tab and newline, DEL, C1) written as
    ``\\xNN``."""
    return text.translate(_CONTROL)
