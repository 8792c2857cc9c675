"""Names of exception types in a retry policy's ``retry_on``, checked before anything runs.

A name matches an error whose class or one of its bases has that name, qualified or by its
last part (:meth:`kaon.model.specs.RetrySpec.retries_error`), so any class name may be
meant: a builtin (``ValueError``), a library's (``requests.HTTPError``) or the user's own
(``TransientError``). Only the names that cannot be meant are refused: one that is not a
dotted name, and a close misspelling of a builtin exception's name (``ValueErorr``), which
matches nothing and so silently turns the retries off.
"""

from __future__ import annotations

import builtins
import difflib
import sys
from typing import Final

BUILTIN_EXCEPTIONS: Final = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
_BY_LOWER: Final = {name.lower(): name for name in sorted(BUILTIN_EXCEPTIONS)}

# difflib's ratio alone also takes real classes for misspellings: subprocess's
# CalledProcessError (~ ChildProcessError, 0.86), httpx's ConnectError (~ ConnectionError,
# 0.89). A typo is a letter or two dropped, doubled, swapped or changed: the name must also
# be at most this many such edits away from the builtin's.
_CUTOFF: Final = 0.85
_MAX_EDITS: Final = 2
# A name qualified by a standard library module names that module's own class (tarfile's
# TarError is one letter from TabError); builtins are named bare or as ``builtins.X``.
_OTHER_STDLIB: Final = frozenset(sys.stdlib_module_names) - {"builtins"}


def error_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an exception type in ``retry_on``, or None when it can.

    Refused: a non-string, an empty name, a name that is not dot-separated parts whose last
    (the class) is a Python identifier, and one whose last part is a close misspelling of a
    builtin exception's name (the message suggests the builtin). Names of other classes are
    accepted: the step's code may define or import them."""
    if not isinstance(name, str):
        return f"an exception type name is a string, got {name!r:.60}"
    if not name:
        return "an exception type name cannot be empty"
    *qualifier, short = name.split(".")
    # The qualifier is a module and a class's __qualname__: a user file's module is named
    # after its file (which may hold a "-"), a class made in a function has "<locals>".
    if not short.isidentifier() or not all(map(_qualifier_part, qualifier)):
        return f"invalid exception type name {name!r:.100}: use a class name, optionally dotted"
    meant = _misspelt_builtin(short)
    if meant is None or (qualifier and qualifier[0] in _OTHER_STDLIB):
        return None
    return f"unknown exception type {name!r}: did you mean {meant!r}?"


def _qualifier_part(part: str) -> bool:
    return bool(part) and not any(c.isspace() for c in part)


def _misspelt_builtin(short: str) -> str | None:
    """The builtin exception ``short`` is a close misspelling of, if any (case aside)."""
    if short in BUILTIN_EXCEPTIONS:
        return None
    lower = short.lower()
    close = difflib.get_close_matches(lower, _BY_LOWER, n=1, cutoff=_CUTOFF)
    if not close:
        return None
    meant = _BY_LOWER[close[0]]
    if short.endswith(meant):  # FSTimeoutError, NewConnectionError: another class's name
        return None
    return meant if _edits(lower, close[0]) <= _MAX_EDITS else None


def _edits(a: str, b: str) -> int:
    """Letters inserted, deleted, changed or swapped with a neighbour to make ``a`` into
    ``b`` (the optimal string alignment distance)."""
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[len(b)]
