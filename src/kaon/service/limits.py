"""How far a read may page and how large a number a request may name, defined once.

The HTTP API's query parameters and the ``kaon`` command's options take their bounds from
here, so a number is refused the same way locally and against a server (and never reaches
the store past what its integers hold). Only constants: the CLI imports this at start-up.
"""

from __future__ import annotations

from typing import Final

MAX_OFFSET: Final = 10_000_000
"""The furthest a page of step runs (or of a workflow's runs) may start."""

MAX_RUNS_OFFSET: Final = 1_000_000
"""The furthest a page of the run list (``kaon runs``, ``GET /runs``) may start."""

MAX_RUNS_PAGE: Final = 1000
"""The most runs one ``GET /runs`` answers (a client wanting more follows the pages)."""

MAX_RUNS_LISTED: Final = 10_000
"""The most runs ``kaon runs --limit`` lists (locally, or a page at a time from a server)."""

MAX_VERSION: Final = 2**31 - 1
"""The largest workflow version number."""

COMPARE_ROWS: Final = 1000
"""The metric rows and the step rows a comparison lists by default (each list)."""

MAX_COMPARE_ROWS: Final = 100_000
"""The most metric rows and step rows a comparison lists (``--limit``, ``limit=``)."""

RUN_METRICS: Final = 1000
"""The metric values a run's detail or page lists by default (``metrics_truncated`` says
when there are more: all of them in ``GET /runs/{id}/metrics``, a page at a time)."""

MAX_RUN_METRICS_PAGE: Final = 10_000
"""The most metric values one page of ``GET /runs/{id}/metrics`` holds, and how many it
holds by default (``Kaon-Next`` says where the next page starts)."""

ARTIFACTS_PAGE: Final = 1000
"""The most step runs one page of a run's artifacts covers (``GET /runs/{id}/artifacts``)."""

NEXT_PAGE: Final = "Kaon-Next"
"""The header of every paged list's answer when more may remain: what to send back as its
``before`` (a newest-first list) or ``after`` (an oldest-first one) for the next page. A page
without it is the last."""

LIST_PAGE: Final = 100
"""The rows a page of a list of backfills, tokens, signals or audit entries holds by
default."""

MAX_LIST_PAGE: Final = 1000
"""The most rows one page of those lists holds (``limit``)."""
