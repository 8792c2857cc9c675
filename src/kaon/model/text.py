"""Text from user code, made fit to store and to show: valid UTF-8, bounded, never raising.

A step's code decides what it prints, what its exceptions say and what it names its metrics.
None of that may stop the engine from recording the step: a lone surrogate (an undecodable
file name printed as is) cannot be encoded for the database, an exception whose ``__str__``
raises has no message to take, and a 50 MB message would be stored several times and printed
whole. These helpers turn any of it into text that can be.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

MAX_MESSAGE_CHARS = 20_000
"""The longest error message or traceback kept: longer ones keep their head and tail."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def readable_text(text: str) -> str:
    """``text`` with each code point that does not encode to UTF-8 (a lone surrogate, as an
    undecodable byte of a file name becomes) replaced by U+FFFD, and so is each NUL
    (U+0000), which PostgreSQL's text cannot hold (a step printing binary output)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def bounded_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` itself when at most ``limit`` characters, else its head and tail around a
    note of how much was left out."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    left_out = len(text) - 2 * keep
    return f"{text[:keep]}\n... ({left_out:,} characters left out) ...\n{text[-keep:]}"


def exception_text(exc: BaseException) -> str:
    """What ``exc`` says (``str(exc)``), readable and bounded; a placeholder when its
    ``__str__`` itself fails."""
    try:
        said = str(exc)
    except BaseException as broken:  # user code: its __str__ may raise anything
        said = f"<its message could not be read: {type(broken).__name__} in __str__>"
    return bounded_text(readable_text(said))


def holds_nul(value: object) -> bool:
    """Whether a NUL character (U+0000) is in any string or key of a JSON value: PostgreSQL's
    text and jsonb cannot hold one."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(v) for v in value)
    return False


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'total'?)"`` for a mistyped ``name`` close to one of ``known`` (a
    step id, a step name); empty when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
