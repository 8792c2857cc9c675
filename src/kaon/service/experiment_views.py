"""Typed views of artifacts, lineage, memoization and experiment comparison.

These pydantic models are the ``--json`` output of ``kaon artifacts``, ``lineage``, ``get``,
``explain``, ``cache``, ``compare``, ``plot`` and ``gc``, and what :mod:`kaon.client` returns:
one definition for the CLI, the client and, later, the HTTP API. Times are Unix seconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ArtifactView(BaseModel):
    """One blob a step run produced (or reused, when the step was cached)."""

    run_id: str
    path: str = Field(description="step run path, e.g. segments[3].train")
    output: str = Field(description="output name (return for a plain return value)")
    hash: str
    serializer: str
    type: str = ""
    size: int
    created_at: float | None = None
    attempt: int | None = None
    item_index: int | None = None
    inputs: list[str] = Field(default_factory=list, description="hashes of input blobs")
    cached_from: str | None = Field(default=None, description="run:path whose output it reused")

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of the hash."""
        return self.hash[:12]


class ValueView(BaseModel):
    """A small JSON output kept inline in the state store."""

    path: str
    output: str
    value: Any = None
    cached_from: str | None = None


class RunArtifactsView(BaseModel):
    """The outputs of a run's steps: stored blobs and inline values (``kaon artifacts``), of
    every step run or of one page of them (``offset``, ``limit``, in creation order)."""

    run_id: str
    workflow: str
    artifacts: list[ArtifactView] = Field(default_factory=list)
    values: list[ValueView] = Field(default_factory=list)
    steps_total: int = Field(default=0, description="step runs of the run, every level")
    offset: int = Field(default=0, description="the first step run looked at")
    next_offset: int | None = Field(
        default=None, description="where the next page starts (None: this was the last)"
    )


MAX_CONSUMERS = 1_000  # step attempts listed as a blob's consumers (a data set read by every run)


class ConsumerView(BaseModel):
    """A step attempt that read a blob and succeeded: one per blob it stored (``output``,
    ``hash``), or one with both None when it returned only inline values."""

    run_id: str
    path: str
    output: str | None = None
    hash: str | None = None
    attempt: int | None = None


class LineageView(BaseModel):
    """Where a blob came from and what used it (``kaon lineage``).

    ``producers`` lists every step run that produced this content (the same bytes may come
    from several runs), oldest first; ``sources`` is the lineage of the blobs they read, down
    to the requested depth (``truncated`` when more exists below). ``consumers`` (the step
    attempts that read it, oldest first, at most :data:`MAX_CONSUMERS`:
    ``consumers_truncated`` when there are more) are filled for the top-level blob only.
    """

    hash: str
    serializer: str = ""
    type: str = ""
    size: int = 0
    producers: list[ArtifactView] = Field(default_factory=list)
    sources: list[LineageView] = Field(default_factory=list)
    consumers: list[ConsumerView] = Field(default_factory=list)
    consumers_truncated: bool = False
    truncated: bool = False


class FetchView(BaseModel):
    """What ``kaon get`` fetched: where from, and where it was written or a preview."""

    source: str = Field(description="sha256, or run:path:output")
    kind: str = Field(description="artifact | value | list | dict")
    hash: str | None = None
    serializer: str | None = None
    type: str = ""
    size: int | None = None
    written_to: str | None = None
    format: str | None = Field(
        default=None, description="files | parquet | csv | npy | json | pickle"
    )
    preview: str | None = None


class ComponentChange(BaseModel):
    """One component of a cache key that differs from an earlier execution."""

    component: str = Field(description="code | config | version | step_type | inputs.<name>")
    old: Any = None
    new: Any = None


class ParamChange(BaseModel):
    """A run parameter whose value differs between two runs."""

    name: str
    old: Any = None
    new: Any = None


class ExplainView(BaseModel):
    """Why a step run was a cache hit or miss (``kaon explain``).

    ``verdict`` is one of ``hit`` (outputs reused from ``source``), ``changed`` (an earlier
    execution exists; ``changes`` lists the key components that differ from it),
    ``blobs_missing`` (an earlier execution had the same key but its blobs are gone),
    ``forced`` (executed without a lookup: ``--no-cache``, ``--force``, ``restart --force``),
    ``no_earlier_execution``, ``not_cacheable`` (caching is off for the step, or its code
    could not be fingerprinted: see ``message``).
    """

    run_id: str
    path: str
    status: str
    verdict: str
    message: str
    key: str | None = None
    source: str | None = None
    compared_with: str | None = Field(default=None, description="run:path of the nearest entry")
    compared_key: str | None = None
    components: dict[str, Any] = Field(default_factory=dict)
    changes: list[ComponentChange] = Field(default_factory=list)
    param_changes: list[ParamChange] = Field(default_factory=list)
    not_covered: list[str] = Field(
        default_factory=list,
        description="what the step's code reads but the fingerprint cannot cover: NAME (type)",
    )


class CacheEntryView(BaseModel):
    """A memoized execution that later runs may reuse (``kaon cache list``)."""

    key: str
    workflow: str
    step_id: str
    path: str
    run_id: str
    created_at: float
    outputs: list[str] = Field(default_factory=list)
    components: dict[str, Any] = Field(default_factory=dict)


class CacheClearView(BaseModel):
    """The outcome of ``kaon cache clear``."""

    deleted: int
    workflow: str | None = None
    step: str | None = None


class CompareRunView(BaseModel):
    """One run's header in a comparison."""

    id: str
    workflow: str
    status: str
    created_at: float


class ParamRow(BaseModel):
    """A parameter's value in each compared run (``None`` when a run lacks it)."""

    name: str
    values: dict[str, Any]
    differs: bool


class MetricRow(BaseModel):
    """The last value of one metric of one step path in each compared run.

    ``group`` is the path with its innermost item index replaced by ``[*]``
    (``retrain[1].segments[*].train_segment``); ``item_index`` and ``item`` name the
    foreach item (or loop iteration) the value belongs to. A step that was cached in a run
    shows the values of the execution it reused.
    """

    path: str
    name: str
    group: str
    item_index: int | None = None
    item: Any = None
    values: dict[str, float | None]
    differs: bool


class MetricGroupRow(BaseModel):
    """One metric pooled over the items of a step (``segments[*].train``; nested foreaches
    pooled at every level, ``outer[*].inner[*].train``) in each compared run: the mean,
    count, min and max of the items' last values (``None`` and 0 when a run has none). A
    path outside foreach items and loop iterations is a group of one."""

    group: str
    name: str
    mean: dict[str, float | None]
    count: dict[str, int]
    min: dict[str, float | None]
    max: dict[str, float | None]
    differs: bool


class StepRow(BaseModel):
    """A step's status in each compared run (``None`` when a run has no such step)."""

    path: str
    statuses: dict[str, str | None]
    differs: bool


class CompareView(BaseModel):
    """Runs side by side (``kaon compare``)."""

    runs: list[CompareRunView]
    params: list[ParamRow] = Field(default_factory=list)
    groups: list[MetricGroupRow] = Field(
        default_factory=list, description="each metric pooled over a foreach's items"
    )
    metrics: list[MetricRow] = Field(
        default_factory=list, description="the first ``limit`` rows, by group, name and item"
    )
    metrics_total: int = Field(default=0, description="metric rows in all")
    steps: list[StepRow] = Field(
        default_factory=list, description="the first ``limit`` rows, those that differ first"
    )
    steps_total: int = Field(default=0, description="step rows in all")
    steps_differing: int = Field(default=0, description="step rows that differ, in all")


class PlotSeries(BaseModel):
    """One line (or set of bars) of a plot."""

    label: str
    x: list[Any]
    y: list[float]


class PlotView(BaseModel):
    """The data of ``kaon plot`` and where the PNG was written."""

    metric: str
    by: str = Field(description="run | item | step")
    runs: list[str]
    title: str
    x_label: str
    series: list[PlotSeries] = Field(default_factory=list)
    output: str | None = None


class ArtifactRefView(BaseModel):
    """How a recorded blob is stored: what a reader needs to fetch and decode it."""

    hash: str = Field(description="sha256 of the blob's bytes")
    serializer: str
    size: int = Field(description="bytes")
    type: str = Field(description="the Python type of the value, module.qualname")


class StepOutputsView(BaseModel):
    """The output references of one step run, encoded (``kaon.model.values.encode_ref``):
    inline values as they are, blobs by hash (fetched from ``GET /artifacts/{hash}/blob``)."""

    run_id: str
    path: str
    outputs: dict[str, Any] = Field(default_factory=dict)


class MetricRowsView(BaseModel):
    """Every metric value of a run as flat rows (what ``RunHandle.metrics`` tabulates)."""

    run_id: str
    rows: list[dict[str, Any]] = Field(default_factory=list)


class GcView(BaseModel):
    """The outcome of ``kaon gc``: blobs scanned, kept and deleted (or that would be)."""

    dry_run: bool
    min_age_s: float
    runs_older_than_s: float | None = Field(
        default=None, description="finished runs older than this were deleted first (or would be)"
    )
    keep_last: int | None = Field(
        default=None,
        description="the newest finished runs of each workflow kept whatever their age",
    )
    runs: list[str] = Field(
        default_factory=list, description="the runs deleted (in a dry run: that would be)"
    )
    runs_skipped: list[str] = Field(
        default_factory=list, description="runs past retention that could not be deleted now"
    )
    scanned: int = 0
    referenced: int = Field(
        default=0, description="kept: a recorded artifact or cache entry uses it"
    )
    young: int = Field(default=0, description="kept: younger than the grace period")
    deleted: int = Field(default=0, description="deleted (or, in a dry run, deletable)")
    bytes_freed: int = 0
    deleted_hashes: list[str] = Field(default_factory=list)
    temp_files: int = Field(
        default=0,
        description="partial files of killed writes older than the grace period, deleted "
        "(or, in a dry run, deletable)",
    )
    temp_bytes: int = 0


LineageView.model_rebuild()
