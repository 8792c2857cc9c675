"""How every list route pages, in one place: ``limit`` (at most a documented maximum), then
``before`` for a list read newest first, ``after`` for one read oldest first, and the
:data:`~kaon.service.limits.NEXT_PAGE` header (``Kaon-Next``) on a page after which more may
remain, holding what to send back as that parameter.

A cursor is the last row sent (an id, a version), or a keyset ``CREATED_AT,ID`` where the
rows are ordered by time (runs, backfills, tokens): rows made or deleted between pages never
make one repeat or go missing, as an offset would.
"""

from __future__ import annotations

from fastapi import Response

from kaon.errors import Location, ParameterError, Problem
from kaon.service.limits import NEXT_PAGE

KEYSET = r"^[0-9]{1,12}(\.[0-9]{1,20})?,.{1,200}$"
"""A place in a list ordered by creation: a row's ``created_at`` and id (``Kaon-Next``)."""


def keyset(value: str, field: str) -> tuple[float, str]:
    """``CREATED_AT,ID`` (checked by :data:`KEYSET`) as the store's keyset; ParameterError
    naming ``field`` when it is not one."""
    at, _, key = value.partition(",")
    try:
        return float(at), key
    except ValueError:
        message = f"invalid cursor {value[:40]!r}: send back a {NEXT_PAGE} header"
        raise ParameterError(Problem(message, Location(field=field))) from None


def keyset_text(created_at: float, key: str) -> str:
    """The :data:`KEYSET` cursor of a row (``repr`` keeps every bit of the float)."""
    return f"{created_at!r},{key}"


def next_page(response: Response, cursor: object | None) -> None:
    """Say where the next page starts (``Kaon-Next``); None: this page is the last."""
    if cursor is not None:
        response.headers[NEXT_PAGE] = str(cursor)
