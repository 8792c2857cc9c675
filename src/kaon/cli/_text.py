"""Text from a run (log lines, error messages, outputs) made safe for a terminal.

A step decides what it prints. An escape sequence in it, passed to the user's terminal, can
clear the screen, move the cursor over earlier lines, retitle the window or write the
clipboard (OSC 52). So every piece of a run's text the CLI shows on a terminal goes through
:func:`shown`, which writes control characters as ``\\xNN`` (tabs and newlines are kept).
``--json`` output is data, not display, and keeps the text as stored.
"""

from __future__ import annotations

import json
from typing import Any

from kaon.model.text import readable_text

_CONTROL = {
    code: f"\\x{code:02x}"
    for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
    if code not in (0x09, 0x0A)
}


def shown(text: str) -> str:
    """``text`` with its control characters (C0 but tab and newline, DEL, C1) written as
    ``\\xNN``."""
    return text.translate(_CONTROL)


def shown_value(value: Any, width: int | None = None) -> str:
    """A value as a person reads it: its JSON with text as written ("Zürich", not
    "Z\\u00fcrich"; a lone surrogate, which no terminal can print, as U+FFFD), control
    characters as ``\\xNN`` (see :func:`shown`), cut to ``width`` characters ending in
    ``...`` when longer."""
    text = shown(readable_text(json.dumps(value, default=str, ensure_ascii=False)))
    return cut(text, width)


def cut(text: str, width: int | None) -> str:
    """``text``, or its first ``width - 3`` characters and ``...`` when it is longer."""
    if width is None or len(text) <= width:
        return text
    return text[: width - 3] + "..."
