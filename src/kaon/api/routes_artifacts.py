"""What runs produced, read remotely: artifacts (streamed, with HTTP Range reads), lineage,
step outputs, cache explanations, metric rows, comparisons and plot data.

Every route is a thin shell over :class:`~kaon.service.experiments.Experiments`, the service
the CLI uses locally, so ``kaon get``, ``lineage``, ``explain``, ``compare`` and ``plot``
answer the same over ``KAON_URL``. Reading needs ``viewer`` on the run's workflow (its owner
group decides); a blob is readable by whoever may read a run that produced it, and is
otherwise answered 404, as if it did not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse

from kaon.api.deps import Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.paging import next_page
from kaon.model.values import encode_outputs
from kaon.service._metric_pages import MAX_METRIC_ROWS_PAGE, METRIC_CURSOR, MetricCursor
from kaon.service.experiment_views import (
    ArtifactRefView,
    CompareView,
    LineageView,
    MetricRowsView,
    PlotView,
    StepOutputsView,
)
from kaon.service.experiments import one_artifact, require_two
from kaon.service.limits import COMPARE_ROWS, MAX_COMPARE_ROWS

router = APIRouter(tags=["artifacts"], responses=ERROR_RESPONSES)

CHUNK = 1 << 20  # bytes per streamed piece
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _readable_blob(services: Services, principal: Principal, given: str) -> str:
    """Resolve a hash or prefix among the blobs ``principal`` may read (those a run it may
    read produced); NotFoundError otherwise. A group's blobs are not revealed to others: a
    prefix is matched against readable blobs only, so neither the message nor its wording
    tells another group's hash, or that one exists."""
    experiments = services.runs.experiments
    readable = services.run_reader(principal)
    if readable is None:
        return experiments.resolve_artifact(given)
    # Every producer is looked at (each run once): another group's making the same bytes
    # first, however often, hides nothing from a reader of one of them.
    found = [
        hash_
        for hash_ in experiments.artifact_matches(given)
        if any(readable(r.run_id) for r in services.store.artifacts(hash=hash_, limit=2**62))
    ]
    return one_artifact(given, found)


@router.get("/artifacts/{artifact}", response_model=ArtifactRefView, summary="An artifact")
def get_artifact(
    artifact: str,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> ArtifactRefView:
    """How a recorded blob (a sha256 or a unique prefix of at least 4 digits) is stored:
    its full hash, serializer, size and type."""
    hash_ = _readable_blob(services, principal, artifact)
    ref = services.runs.experiments.artifact_ref(hash_)
    return ArtifactRefView(
        hash=ref.hash, serializer=ref.serializer, size=ref.size, type=ref.type_name
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header asks for, None for
    the whole blob (no header, or one this server does not serve: several ranges, another
    unit). Raises ValueError for a range that lies wholly outside the blob (answered 416)."""
    found = _RANGE.fullmatch(header.strip()) if header else None
    if found is None or found.group(0) == "bytes=-":
        return None
    start, end = found.group(1), found.group(2)
    if not start:  # a suffix: the last N bytes
        count = int(end)
        if count == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - count), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    if first >= size or last < first:
        raise ValueError("range outside the blob")
    return first, last


def _chunks(file: IO[bytes], first: int, last: int) -> Iterator[bytes]:
    """The bytes ``first..last`` of ``file`` in pieces; closes the file when done."""
    try:
        file.seek(first)
        left = last - first + 1
        while left > 0:
            piece = file.read(min(CHUNK, left))
            if not piece:
                return
            left -= len(piece)
            yield piece
    finally:
        file.close()


@router.get(
    "/artifacts/{artifact}/blob",
    summary="An artifact's bytes",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The blob."},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range."},
        416: {"description": "The range lies outside the blob."},
    },
)
def get_blob(
    artifact: str,
    range_header: str | None = Header(None, alias="Range", max_length=200),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> Response:
    """The blob's bytes as stored, streamed (never loaded whole by the server). A
    ``Range: bytes=first-last`` (or ``first-``, or ``-count``) header gets that part with 206
    and ``Content-Range``, so a reader resumes a broken download or reads a slice. The
    ``ETag`` is the sha256: a reader verifies the whole content against it."""
    hash_ = _readable_blob(services, principal, artifact)
    file, size = services.runs.experiments.open_blob(hash_)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{hash_}"'}
    try:
        wanted = byte_range(range_header, size)
    except ValueError:
        file.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = wanted if wanted is not None else (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _chunks(file, first, last),
        status_code=200 if wanted is None else 206,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.get(
    "/artifacts/{artifact}/lineage", response_model=LineageView, summary="An artifact's lineage"
)
def get_lineage(
    artifact: str,
    depth: int = Query(3, ge=0, le=50, description="Levels of inputs."),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> LineageView:
    """Where a blob came from (its producers and, ``depth`` levels down, the blobs they read)
    and which steps used it; runs the caller may not read are left out."""
    hash_ = _readable_blob(services, principal, artifact)
    return services.runs.experiments.lineage(
        hash_, depth=depth, readable=services.run_reader(principal)
    )


@router.get(
    "/runs/{run_id}/outputs", response_model=StepOutputsView, summary="A step run's outputs"
)
def get_outputs(
    run_id: str,
    path: str = Query(..., max_length=2000, description="``train``, ``segments[3].train``"),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StepOutputsView:
    """The output references of a step run: inline values, and blobs by hash."""
    full = services.authorize_run(principal, "viewer", run_id)
    outputs = services.runs.experiments.step_outputs(full, path)
    return StepOutputsView(run_id=full, path=path, outputs=encode_outputs(outputs))


@router.get("/runs/{run_id}/metric-rows", response_model=MetricRowsView, summary="Metric rows")
def get_metric_rows(
    response: Response,
    run_id: str,
    limit: int = Query(MAX_METRIC_ROWS_PAGE, ge=1, le=MAX_METRIC_ROWS_PAGE),
    after: str | None = Query(
        None,
        pattern=METRIC_CURSOR,
        description="Only the rows after this one: the `Kaon-Next` header of the page before.",
    ),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> MetricRowsView:
    """The run's metric values as flat rows (cached steps: the values they reused), at most
    ``limit`` a page: its own values in the order reported, then those its cached steps
    reused. While rows may remain, ``Kaon-Next`` says where the next page starts (send it
    back as ``after``); the cost follows the page, not the run."""
    full = services.authorize_run(principal, "viewer", run_id)
    cursor = MetricCursor.parse(after) if after is not None else None
    rows, following = services.runs.experiments.metric_rows(full, after=cursor, limit=limit)
    next_page(response, following)
    return MetricRowsView(run_id=full, rows=rows)


def _readable_runs(services: Services, principal: Principal, runs: list[str]) -> list[str]:
    return [services.authorize_run(principal, "viewer", r) for r in runs]


@router.get("/compare", response_model=CompareView, summary="Compare runs")
def compare_runs(
    run: list[str] = Query(
        ...,
        min_length=2,
        max_length=50,
        description="Run ids (repeat), at least two different ones.",
        json_schema_extra={"uniqueItems": True},
    ),
    limit: int = Query(
        COMPARE_ROWS,
        ge=1,
        le=MAX_COMPARE_ROWS,
        description="Metric rows and step rows listed (each); ``groups`` pools every item.",
    ),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> CompareView:
    """Runs side by side: parameters, metrics (last value, and pooled over a foreach's items)
    and step statuses (those that differ first), ``limit`` rows of each with their totals."""
    readable = _readable_runs(services, principal, run)  # 404/403 first, as for one run
    require_two(readable)  # two prefixes of one run
    return services.runs.experiments.compare(readable, limit=limit)


@router.get("/plot", response_model=PlotView, summary="The data of a metric plot")
def plot_data(
    metric: str = Query(..., max_length=200),
    run: list[str] = Query(..., min_length=1, max_length=50, description="Run ids (repeat)."),
    by: str | None = Query(None, pattern="^(run|item|step)$"),
    step: str | None = Query(None, max_length=2000),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> PlotView:
    """The series of a plot of ``metric`` across runs, foreach items or epochs (the client
    draws it)."""
    runs = _readable_runs(services, principal, run)
    return services.runs.experiments.plot(runs, metric, by=by, step=step)
