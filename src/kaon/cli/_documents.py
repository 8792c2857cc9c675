"""Where ``--json`` and ``--events`` documents are written: stdout, and nothing else there.

With the inline executor a step runs in a thread of the command's own process and shares its
file descriptors. What it prints through ``sys.stdout`` is its log, but what it (or a child
process it starts, or C code) writes to descriptor 1 itself is not: it landed in the middle of
``kaon run --json``'s document. While a command that prints documents drives or follows a run,
:func:`documents_only_on_stdout` points descriptor 1 at stderr and keeps the real stdout, on a
descriptor of its own, for :func:`document_stream`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_kept: list[TextIO] = []  # the real stdout while descriptor 1 is stderr's


def document_stream() -> TextIO:
    """The stream the command's documents go to: the real stdout."""
    return _kept[-1] if _kept else sys.stdout


@contextmanager
def documents_only_on_stdout() -> Iterator[None]:
    """Descriptor 1 writes to stderr until the block ends; documents still reach stdout
    (:func:`document_stream`). Nothing changes when ``sys.stdout`` is not descriptor 1 (a
    test's captured stream: nothing a step writes to the descriptor reaches it anyway)."""
    try:
        real = sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        real = False
    if not real or _kept:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    kept = open(saved, "w", encoding=sys.stdout.encoding or "utf-8", closefd=True)  # noqa: SIM115
    os.dup2(2, 1)
    _kept.append(kept)
    try:
        yield
    finally:
        _kept.pop()
        kept.flush()
        sys.stdout.flush()  # what went to descriptor 1 meanwhile goes to stderr
        os.dup2(saved, 1)
        kept.close()
