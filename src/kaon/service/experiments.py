"""Artifacts, lineage, memoization and experiment comparison: what a data scientist asks of
recorded runs.

:class:`Experiments` reads what the engine recorded (step runs, artifact lineage, cache
entries and ``cache`` events, metrics) and the artifact store, and answers with the view
models of :mod:`kaon.service.experiment_views`. It never changes a run; it deletes only
cache entries (:meth:`Experiments.cache_clear`) and unreferenced blobs (:meth:`Experiments.gc`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from kaon.artifacts.base import ArtifactStore
from kaon.errors import (
    ArtifactError,
    ConfigurationError,
    InvalidActionError,
    Location,
    NotFoundError,
    ParameterError,
    Problem,
)
from kaon.model.status import StepStatus
from kaon.model.values import (
    ArtifactRef,
    Literal,
    RefDict,
    RefList,
    ValueRef,
    artifact_refs,
    decode_outputs,
    outputs_value,
)
from kaon.service import _compare, _export
from kaon.service._compare import require_rows as require_rows  # for the API and clients
from kaon.service._compare import require_two as require_two
from kaon.service._metric_pages import (
    MAX_METRIC_ROWS_PAGE,
    MetricCursor,
    metric_page,
    metric_row,
)
from kaon.service.experiment_views import (
    MAX_CONSUMERS,
    ArtifactView,
    CacheClearView,
    CacheEntryView,
    CompareView,
    ComponentChange,
    ConsumerView,
    ExplainView,
    FetchView,
    GcView,
    LineageView,
    ParamChange,
    PlotView,
    RunArtifactsView,
    ValueView,
)
from kaon.service.limits import ARTIFACTS_PAGE, COMPARE_ROWS, MAX_OFFSET
from kaon.store.base import (
    ArtifactRecord,
    CacheEntryRecord,
    EventRecord,
    StateStore,
    StepRunRecord,
)
from kaon.store.reads import SQLRunReads
from kaon.store.sql import SQLStore
from kaon.triggers import retention

_HEX = re.compile(r"[0-9a-f]{4,64}")
_USES_PAGE = 1_000  # consumers read per query
_USES_SCANNED = 20 * MAX_CONSUMERS  # uses looked at for one lineage, readable or not
_ALL = 2**62  # "no limit" for store queries that take one


def _every_run(_run_id: str) -> bool:
    return True


_EVENT_PAGE = 1000


@runtime_checkable
class BlobListing(Protocol):
    """An artifact store that can list and delete its blobs (needed by garbage collection)."""

    def iter_blobs(self) -> Iterator[tuple[str, int]]:
        """``(sha256, size)`` of every blob."""
        ...

    def delete_blob(self, hash_: str) -> None:
        """Delete one blob."""
        ...

    def blob_path(self, ref: ArtifactRef | str) -> str:
        """Where a blob lives (a local path or a URL)."""
        ...


@runtime_checkable
class TempListing(Protocol):
    """An artifact store that can list and delete the temporary files of its writes."""

    def iter_temp_files(self) -> Iterator[tuple[str, int, float]]:
        """``(path, size, modification time)`` of every temporary file."""
        ...

    def delete_temp_file(self, path: str) -> None:
        """Delete one temporary file."""
        ...


@runtime_checkable
class BlobReader(Protocol):
    """An artifact store that can open a blob for streaming (the API's artifact reads)."""

    def open_blob(self, hash_: str) -> tuple[IO[bytes], int]:
        """An open binary file of the blob and its size in bytes."""
        ...


class Experiments:
    """Read-mostly operations over recorded runs, their artifacts and the cache.

    Every method raises :class:`~kaon.errors.NotFoundError` for an unknown or ambiguous run,
    step or artifact, :class:`~kaon.errors.CorruptArtifactError` when a blob does not match its
    hash (a corrupt blob is never returned) and :class:`~kaon.errors.ArtifactError` when the
    artifact store fails.
    """

    def __init__(self, store: StateStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    # -- naming things -----------------------------------------------------------------------

    def resolve_run(self, given: str) -> str:
        """The full id of the run named by ``given`` or a unique prefix of it."""
        return self.store.resolve_run_id(given)

    def resolve_artifact(self, given: str) -> str:
        """The full sha256 of the recorded artifact named by ``given`` or a unique prefix
        (at least 4 hex digits; a ``sha256:`` prefix is allowed)."""
        return one_artifact(given, self.artifact_matches(given))

    def artifact_matches(self, given: str) -> list[str]:
        """The full sha256 of every recorded artifact that ``given`` (a hash or a prefix of
        at least 4 hex digits) names, in order; NotFoundError when ``given`` is neither."""
        text = artifact_text(given)
        if len(text) == 64:
            return [text] if self.store.artifacts(hash=text, limit=1) else []
        return sorted(h for h in self.store.referenced_hashes() if h.startswith(text))

    def artifact_ref(self, hash_: str) -> ArtifactRef:
        """The reference of a recorded blob (serializer, size, type from its lineage)."""
        records = self.store.artifacts(hash=hash_, limit=1)
        if not records:
            raise NotFoundError(f"no recorded artifact has hash {hash_}")
        first = records[0]
        return ArtifactRef(first.hash, first.serializer, first.size, first.type_name)

    # -- artifacts and lineage ---------------------------------------------------------------

    def run_artifacts(
        self, run: str, *, offset: int = 0, limit: int | None = None
    ) -> RunArtifactsView:
        """The blobs a run's steps produced or reused, and their inline values: those of
        ``limit`` step runs (every level, in creation order) from ``offset``, or of every
        step run read a page at a time (``limit`` None). A page reads its step runs, their
        artifact records and those of the executions its cached steps reused, nothing else:
        it read every step run and artifact record of the run (2.4 MB answered for a sweep of
        20,000 items). Raises ParameterError for a ``limit`` out of 1..1,000 or an
        ``offset`` out of 0..10,000,000."""
        if limit is not None and not 1 <= limit <= ARTIFACTS_PAGE:
            message = f"limit must be from 1 to {ARTIFACTS_PAGE:,}, got {limit}"
            raise ParameterError(Problem(message, Location(field="limit")))
        if not 0 <= offset <= MAX_OFFSET:
            message = f"offset must be from 0 to {MAX_OFFSET:,}, got {offset}"
            raise ParameterError(Problem(message, Location(field="offset")))
        run_id = self.resolve_run(run)
        record = self.store.get_run(run_id)
        reads = SQLRunReads(_sql(self.store))
        view = RunArtifactsView(run_id=run_id, workflow=record.workflow, offset=offset)
        at, total = offset, None
        while True:
            page = reads.all_levels_page(
                run_id, limit=limit or ARTIFACTS_PAGE, offset=at, total=total
            )
            total = page.total
            self._page_outputs(reads, run_id, page.rows, view)
            at += len(page.rows)
            if not page.rows or at >= total or limit is not None:
                break
        view.steps_total = total
        view.next_offset = at if at < total and page.rows else None
        return view

    def _page_outputs(
        self, reads: SQLRunReads, run_id: str, rows: list[StepRunRecord], view: RunArtifactsView
    ) -> None:
        """Add the outputs of ``rows`` (one page of step runs) to ``view``, in their order."""
        own_records = reads.artifacts_at_paths(run_id, [row.path for row in rows])
        artifacts = [_artifact_view(r) for r in own_records]
        own = {(a.path, a.output, a.hash): a for a in artifacts}
        cached = [r for r in rows if r.status is StepStatus.CACHED and r.cached_from]
        sources: dict[str, dict[tuple[str, str, str], ArtifactRecord]] = {}
        by_run: dict[str, list[str]] = defaultdict(list)
        for row in cached:
            source_run, _, source_path = str(row.cached_from).partition(":")
            by_run[source_run].append(source_path)
        for source_run, paths in by_run.items():
            try:
                records = reads.artifacts_at_paths(source_run, paths)
            except NotFoundError:
                records = []
            sources[source_run] = {(r.path, r.output, r.hash): r for r in records}
        for row in rows:
            if row.kind != "task" or not row.outputs:
                continue
            for name, ref in decode_outputs(row.outputs).items():
                if isinstance(ref, Literal):
                    view.values.append(
                        ValueView(
                            path=row.path, output=name, value=ref.value, cached_from=row.cached_from
                        )
                    )
                elif row.status is StepStatus.CACHED and row.cached_from:
                    source = sources.get(row.cached_from.partition(":")[0], {})
                    for blob in artifact_refs(ref):
                        # Deleting the run it came from copied its record here: one row.
                        copied = own.get((row.path, name, blob.hash))
                        if copied is not None:
                            copied.cached_from = row.cached_from
                            continue
                        artifacts.append(
                            _reused_view(run_id, row.path, name, blob, row.cached_from, source)
                        )
        order = {row.path: n for n, row in enumerate(rows)}
        artifacts.sort(key=lambda a: order.get(a.path, len(order)))
        view.artifacts.extend(artifacts)

    def lineage(
        self,
        artifact: str,
        *,
        depth: int = 3,
        readable: Callable[[str], bool] | None = None,
    ) -> LineageView:
        """Where a blob came from (recursively, ``depth`` levels of inputs) and what used it.

        ``readable(run_id)`` (a server's caller) leaves out the runs it refuses, at every
        level: their producers, the inputs only they read, and their consumers, which are
        skipped before the first :data:`MAX_CONSUMERS` are taken, so another group's use
        neither shows nor crowds out the caller's own."""
        hash_ = self.resolve_artifact(artifact)
        may = readable or _every_run
        view = self._lineage(hash_, depth, set(), may)
        view.consumers, view.consumers_truncated = self._consumers(hash_, may)
        return view

    def _consumers(self, hash_: str, may: Callable[[str], bool]) -> tuple[list[ConsumerView], bool]:
        """The first MAX_CONSUMERS readable attempts that read ``hash_``, and whether there
        may be more (paged by id; a scan of more than _USES_SCANNED rows stops)."""
        found: list[ConsumerView] = []
        taken = after = scanned = 0
        while True:
            uses = self.store.artifact_uses(hash_, after_id=after, limit=_USES_PAGE)
            for use in uses:
                after = use.id or after
                if not may(use.run_id):
                    continue
                if taken == MAX_CONSUMERS:
                    return found, True
                taken += 1
                made: list[tuple[str | None, str | None]] = [(o, h) for o, h in use.outputs]
                found.extend(
                    ConsumerView(
                        run_id=use.run_id, path=use.path, output=o, hash=h, attempt=use.attempt
                    )
                    for o, h in made or [(None, None)]
                )
            scanned += len(uses)
            if len(uses) < _USES_PAGE:
                return found, False
            if scanned >= _USES_SCANNED:
                return found, True

    def _lineage(
        self, hash_: str, depth: int, seen: set[str], may: Callable[[str], bool]
    ) -> LineageView:
        seen.add(hash_)
        records = [r for r in self.store.artifacts(hash=hash_, limit=_ALL) if may(r.run_id)]
        view = LineageView(hash=hash_, producers=[_artifact_view(r) for r in records])
        if records:
            view.serializer, view.type, view.size = (
                records[0].serializer,
                records[0].type_name,
                records[0].size,
            )
        inputs = list(dict.fromkeys(h for r in records for h in r.inputs if h not in seen))
        if depth <= 0:
            view.truncated = bool(inputs)
            return view
        for source in inputs:
            if source not in seen:
                view.sources.append(self._lineage(source, depth - 1, seen, may))
        return view

    # -- fetching values ---------------------------------------------------------------------

    def load(self, artifact: str) -> Any:
        """The value of a recorded blob, verified against its hash."""
        return self.artifacts.get(self.artifact_ref(self.resolve_artifact(artifact)))

    def step_outputs(self, run: str, path: str) -> dict[str, ValueRef]:
        """The output references of the step run at ``path`` (empty when it has none)."""
        run_id = self.resolve_run(run)
        return decode_outputs(self.store.get_step_run(run_id, path).outputs)

    def step_output_ref(self, run: str, path: str, output: str | None = None) -> ValueRef:
        """One output of a step run, or (``output`` None) its value as ``steps.X`` sees it."""
        run_id = self.resolve_run(run)
        row = self.store.get_step_run(run_id, path)
        where = f"step {path} of run {run_id}"
        return pick_output(decode_outputs(row.outputs), where, output, row.status.value)

    def fetch(
        self,
        target: str,
        step: str | None = None,
        *,
        output: str | None = None,
        dest: str | Path | None = None,
    ) -> FetchView:
        """Load a blob (``target`` a hash or prefix) or a step's output (``target`` a run,
        ``step`` a path) and write it to ``dest`` or describe it with a preview.

        Files and folders are copied; DataFrames and Arrow tables are written as Parquet (CSV
        when ``dest`` ends in ``.csv``), arrays as ``.npy``, bytes as they are, JSON values as
        JSON, anything else pickled. Raises CorruptArtifactError for a corrupt blob,
        InvalidActionError when ``dest`` is an existing folder and the value is not a folder.
        """
        return fetch_value(self, target, step, output, dest)

    def open_blob(self, hash_: str) -> tuple[IO[bytes], int]:
        """The recorded blob ``hash_`` opened for streaming, and its size (the caller closes
        it). Raises NotFoundError for an unrecorded hash, ArtifactError when the artifact
        store cannot stream blobs or the blob is missing."""
        self.artifact_ref(hash_)
        blobs = self.artifacts
        if not isinstance(blobs, BlobReader):
            raise ArtifactError(f"artifact store {blobs.url!r} cannot stream its blobs")
        return blobs.open_blob(hash_)

    # -- memoization -------------------------------------------------------------------------

    def explain(self, run: str, path: str) -> ExplainView:
        """Why the step run at ``path`` was a cache hit or miss (see :class:`ExplainView`)."""
        view = self._explain(run, path)
        code = view.components.get("code")
        if isinstance(code, str):
            runs = [view.run_id, *(s.split(":", 1)[0] for s in [view.source or ""] if s)]
            for run_id in runs:
                details = self._code_details(run_id, code)
                if details is not None:
                    view.not_covered = [str(n) for n in details.get("not_covered") or []]
                    break
        return view

    def _code_details(self, run_id: str, code: Any) -> dict[str, Any] | None:
        """The ``fingerprint`` event a run recorded for the code digest ``code``, if any."""
        after = 0
        while True:
            page = self.store.events(run_id, after_id=after, limit=_EVENT_PAGE)
            for event in page:
                if event.kind == "fingerprint" and event.data.get("code") == code:
                    return dict(event.data)
            if len(page) < _EVENT_PAGE or page[-1].id is None:
                return None
            after = page[-1].id

    def _explain(self, run: str, path: str) -> ExplainView:
        run_id = self.resolve_run(run)
        record = self.store.get_run(run_id)
        row = self.store.get_step_run(run_id, path)
        base: dict[str, Any] = {"run_id": run_id, "path": path, "status": row.status.value}
        if row.status is StepStatus.CACHED and row.cache_key and row.cached_from:
            # A hit is on the row itself: the key it matched and where the outputs came from.
            entry = self.store.get_cache_entry(row.cache_key)
            base.update(key=row.cache_key, components=dict(entry.components) if entry else {})
            return ExplainView(
                **base,
                verdict="hit",
                source=row.cached_from,
                compared_with=row.cached_from,
                compared_key=row.cache_key,
                message=f"cache hit: outputs reused from {row.cached_from} (same cache key)",
            )
        event = self._cache_event(run_id, path)
        if event is None:
            return ExplainView(**base, verdict="not_cacheable", message=_no_event(row.kind, row))
        data = event.data
        if "error" in data:
            message = f"not cacheable: its code could not be fingerprinted ({data['error']})"
            return ExplainView(**base, verdict="not_cacheable", message=message)
        key, components = str(data.get("key")), dict(data.get("components") or {})
        base.update(key=key, components=components)
        if data.get("forced"):
            message = (
                "executed without a cache lookup: the run has --no-cache or --force on this "
                "step, or was restarted with --force (its entry is recorded for later runs)"
            )
            return ExplainView(**base, verdict="forced", message=message)
        if data.get("hit"):
            source = str(data.get("source") or row.cached_from)
            return ExplainView(
                **base,
                verdict="hit",
                source=source,
                compared_with=source,
                compared_key=key,
                message=f"cache hit: outputs reused from {source} (same cache key)",
            )
        same = self.store.get_cache_entry(key)
        lost = data.get("blobs_missing")
        if (
            lost is None
            and same is not None
            and (same.run_id, same.path) != (run_id, path)
            and same.created_at <= event.at  # not a later execution that replaced it
        ):
            lost = f"{same.run_id}:{same.path}"
        if lost is not None:
            return ExplainView(
                **base,
                verdict="blobs_missing",
                compared_with=str(lost),
                compared_key=key,
                message=(
                    f"cache miss: {lost} had the same cache key, but some of "
                    "its output blobs were missing from the artifact store, so the step executed"
                ),
            )
        entry = self._nearest_entry(record.workflow, row.step_id, run_id, key, event, components)
        if entry is None:
            message = (
                f"cache miss: no earlier successful execution of step {row.step_id!r} of "
                f"workflow {record.workflow!r} is recorded (first run, or the cache was cleared)"
            )
            return ExplainView(**base, verdict="no_earlier_execution", message=message)
        old_parts = self._code_details(entry.run_id, entry.components.get("code"))
        new_parts = self._code_details(run_id, components.get("code"))
        changes = _component_changes(entry.components, components, old_parts, new_parts)
        names = ", ".join(c.component for c in changes) or "nothing recorded"
        return ExplainView(
            **base,
            verdict="changed",
            compared_with=f"{entry.run_id}:{entry.path}",
            compared_key=entry.key,
            changes=changes,
            param_changes=self._param_changes(entry.run_id, run_id),
            message=f"cache miss: changed since {entry.run_id}:{entry.path}: {names}",
        )

    def _cache_event(self, run_id: str, path: str) -> EventRecord | None:
        found: EventRecord | None = None
        after = 0
        while True:
            page = self.store.events(run_id, after_id=after, limit=_EVENT_PAGE)
            for event in page:
                if event.kind == "cache" and event.data.get("path") == path:
                    found = event
            if len(page) < _EVENT_PAGE or page[-1].id is None:
                return found
            after = page[-1].id

    def _nearest_entry(
        self,
        workflow: str,
        step_id: str,
        run_id: str,
        key: str,
        event: EventRecord,
        components: dict[str, Any],
    ) -> CacheEntryRecord | None:
        entries = [
            e
            for e in self.store.cache_entries(workflow=workflow, step_id=step_id, limit=1000)
            if e.key != key and e.created_at <= event.at
        ]
        # Siblings in the same run (other foreach items) are no "earlier execution" to the
        # person asking, unless nothing else exists.
        earlier = [e for e in entries if e.run_id != run_id] or entries
        if not earlier:
            return None
        path = str(event.data.get("path"))

        def rank(e: CacheEntryRecord) -> tuple[int, bool, float]:
            shared = sum(1 for k, v in components.items() if e.components.get(k) == v)
            return shared, e.path == path, e.created_at

        return max(earlier, key=rank)

    def _param_changes(self, old_run: str, new_run: str) -> list[ParamChange]:
        if old_run == new_run:
            return []
        try:
            old, new = self.store.get_run(old_run).params, self.store.get_run(new_run).params
        except NotFoundError:
            return []
        names = list(dict.fromkeys([*old, *new]))
        return [
            ParamChange(name=n, old=old.get(n), new=new.get(n))
            for n in names
            if _canonical(old.get(n)) != _canonical(new.get(n))
        ]

    def cache_list(
        self, *, workflow: str | None = None, step: str | None = None, limit: int = 100
    ) -> list[CacheEntryView]:
        """Cache entries, newest first."""
        return [
            CacheEntryView(
                key=e.key,
                workflow=e.workflow,
                step_id=e.step_id,
                path=e.path,
                run_id=e.run_id,
                created_at=e.created_at,
                outputs=sorted(e.outputs),
                components=e.components,
            )
            for e in self.store.cache_entries(workflow=workflow, step_id=step, limit=limit)
        ]

    def cache_clear(
        self, *, workflow: str | None = None, step: str | None = None, everything: bool = False
    ) -> CacheClearView:
        """Invalidate cache entries of a workflow and/or step id, or (``everything``) all.

        Raises InvalidActionError without a filter unless ``everything`` is set, and when
        ``everything`` is combined with a filter.
        """
        if everything and (workflow or step):
            raise InvalidActionError("--all clears every entry; do not combine it with filters")
        if not everything and not (workflow or step):
            raise InvalidActionError(
                "refusing to clear the whole cache: name --workflow and/or --step, or pass --all"
            )
        deleted = self.store.delete_cache_entries(workflow=workflow, step_id=step)
        return CacheClearView(deleted=deleted, workflow=workflow, step=step)

    # -- comparison --------------------------------------------------------------------------

    def compare(self, runs: Sequence[str], *, limit: int = COMPARE_ROWS) -> CompareView:
        """Parameters, metrics (last value per step path and name, per foreach item, and
        pooled per group) and step statuses of several runs side by side, ``limit`` rows of
        each list at most (see :func:`_compare.compare`). Raises ParameterError for fewer
        than two runs or a ``limit`` out of range."""
        return _compare.compare(self.store, [self.resolve_run(r) for r in runs], limit=limit)

    def metrics(self, run: str) -> list[dict[str, Any]]:
        """Every metric value of a run as flat rows: ``path, group, item_index, item, name,
        value, step, at, reused_from`` (what :meth:`kaon.client.RunHandle.metrics`
        tabulates). A cached step's values are those of the execution it reused. Read a
        page at a time (:meth:`metric_rows`)."""
        run_id = self.resolve_run(run)
        rows: list[dict[str, Any]] = []
        after: MetricCursor | None = None
        while True:
            page, after = self.metric_rows(run_id, after=after)
            rows += page
            if after is None:
                return rows

    def metric_rows(
        self, run: str, *, after: MetricCursor | None = None, limit: int = MAX_METRIC_ROWS_PAGE
    ) -> tuple[list[dict[str, Any]], MetricCursor | None]:
        """At most ``limit`` of the rows of :meth:`metrics` after the cursor ``after``, and
        where the next page starts (None: no row remains). Its cost follows the page (see
        :mod:`kaon.service._metric_pages`)."""
        from kaon.store.reads import SQLRunReads
        from kaon.store.sql import SQLStore

        run_id = self.resolve_run(run)
        if not isinstance(self.store, SQLStore):  # a store of another kind: one page
            return [metric_row(p) for p in _compare.metric_points(self.store, run_id)], None
        self.store.require_run(run_id)
        points, following = metric_page(SQLRunReads(self.store), run_id, after, limit)
        return [metric_row(p) for p in points], following

    def plot(
        self,
        runs: Sequence[str],
        metric: str,
        *,
        by: str | None = None,
        step: str | None = None,
        output: str | Path | None = None,
    ) -> PlotView:
        """The data of a plot of ``metric`` across runs, foreach items or epochs, drawn as a
        PNG at ``output`` when given (needs matplotlib: without it a ConfigurationError says
        how to install it). See :func:`_compare.plot_data`."""
        if output is not None:
            _export.require_matplotlib()
        view = _compare.plot_data(
            self.store, [self.resolve_run(r) for r in runs], metric, by=by, step=step
        )
        if output is not None:
            _export.render_plot(view, Path(output))
            view.output = str(Path(output).absolute())
        return view

    # -- garbage collection ------------------------------------------------------------------

    def gc(
        self,
        *,
        dry_run: bool = False,
        min_age_s: float = 3600.0,
        runs_older_than_s: float | None = None,
        keep_last: int = 0,
        workflow: str | None = None,
    ) -> GcView:
        """Delete blobs that no recorded artifact and no cache entry references, and that are
        older than ``min_age_s`` (a run writing right now is never robbed). A dry run deletes
        nothing and reports what would go. Raises ArtifactError when the store cannot list or
        delete blobs.

        With ``runs_older_than_s``, finished runs that ended longer ago than that are deleted
        first (but the ``keep_last`` newest finished runs of each workflow, and only
        ``workflow``'s runs when given; see :mod:`kaon.triggers.retention`), so the blobs only
        they referenced are freed too. A run that cannot be deleted now (an engine holds it)
        is listed in ``runs_skipped``. A dry run counts the blobs the runs would free.
        """
        blobs = self.artifacts
        if not isinstance(blobs, BlobListing):
            raise ArtifactError(
                f"artifact store {self.artifacts.url!r} cannot list its blobs; no garbage "
                "collection possible"
            )
        view = GcView(
            dry_run=dry_run,
            min_age_s=min_age_s,
            runs_older_than_s=runs_older_than_s,
            keep_last=keep_last if runs_older_than_s is not None else None,
        )
        doomed: set[str] = set()
        if runs_older_than_s is not None:
            policy = retention.RetentionPolicy(runs_older_than_s, keep_last, workflow)
            runs = retention.expired(self.store, policy)
            view.runs = [run.id for run in runs]
            if dry_run:
                doomed = set(view.runs)
            else:
                outcome = retention.delete(self.store, runs)
                view.runs, view.runs_skipped = outcome.deleted, outcome.skipped
        # What is kept is read before listing, so a blob written after this point is young.
        keep = self.store.referenced_hashes() | self._cache_hashes(doomed)
        if doomed:
            keep -= self._freed_by(doomed)
        now = time.time()
        for hash_, size in blobs.iter_blobs():
            view.scanned += 1
            if hash_ in keep:
                view.referenced += 1
            elif min_age_s > 0 and now - self._blob_mtime(blobs, hash_, now) < min_age_s:
                view.young += 1
            else:
                if not dry_run:
                    blobs.delete_blob(hash_)
                view.deleted += 1
                view.bytes_freed += size
                view.deleted_hashes.append(hash_)
        if isinstance(blobs, TempListing):
            # What a write killed mid-way left (a partial model can weigh gigabytes): no
            # run will finish it. A write going on keeps its file young.
            for path, size, modified in blobs.iter_temp_files():
                if min_age_s > 0 and now - modified < min_age_s:
                    continue
                if not dry_run:
                    blobs.delete_temp_file(path)
                view.temp_files += 1
                view.temp_bytes += size
        return view

    def _freed_by(self, runs: set[str]) -> set[str]:
        """The blobs that only ``runs``' artifact records reference."""
        freed: set[str] = set()
        for run_id in runs:
            # Outputs a kept run reused from the cache stay (deleting hands them on).
            reused = {path for user, _, path in self.store.cache_users(run_id) if user not in runs}
            for record in self.store.artifacts(run_id=run_id, limit=_ALL):
                if record.hash in freed or record.path in reused:
                    continue
                owners = {r.run_id for r in self.store.artifacts(hash=record.hash, limit=_ALL)}
                if owners <= runs:
                    freed.add(record.hash)
        return freed

    def _cache_hashes(self, leaving: Collection[str] = ()) -> set[str]:
        found: set[str] = set()
        for entry in self.store.cache_entries(limit=_ALL):
            if entry.run_id in leaving:  # deleted with its run
                continue
            try:
                refs = decode_outputs(entry.outputs).values()
            except (ValueError, KeyError):
                continue
            found.update(a.hash for ref in refs for a in artifact_refs(ref))
        return found

    def _blob_mtime(self, blobs: BlobListing, hash_: str, now: float) -> float:
        """When a blob was written; ``now`` (that is: too young to delete) when unknown."""
        path = blobs.blob_path(hash_)
        try:
            if "://" not in path:
                return os.stat(path).st_mtime
            fs = getattr(blobs, "_fs", None)
            if fs is None:
                return now
            info = fs.info(path)
        except OSError:
            return now
        except Exception:
            return now
        for name in ("mtime", "LastModified", "last_modified", "created", "modified"):
            stamp = info.get(name)
            if isinstance(stamp, int | float):
                return float(stamp)
            if hasattr(stamp, "timestamp"):
                return float(stamp.timestamp())
        return now


# -- helpers -------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sql(store: StateStore) -> SQLStore:
    if not isinstance(store, SQLStore):
        raise ConfigurationError(f"run reads need a SQL store, not {type(store).__name__}")
    return store


def _artifact_view(record: ArtifactRecord) -> ArtifactView:
    return ArtifactView(
        run_id=record.run_id,
        path=record.path,
        output=record.output,
        hash=record.hash,
        serializer=record.serializer,
        type=record.type_name,
        size=record.size,
        created_at=record.created_at,
        attempt=record.attempt,
        item_index=record.item_index,
        inputs=list(record.inputs),
    )


def _reused_view(
    run_id: str,
    path: str,
    output: str,
    blob: ArtifactRef,
    cached_from: str,
    source: dict[tuple[str, str, str], ArtifactRecord],
) -> ArtifactView:
    origin = source.get((cached_from.partition(":")[2], output, blob.hash))
    return ArtifactView(
        run_id=run_id,
        path=path,
        output=output,
        hash=blob.hash,
        serializer=blob.serializer,
        type=blob.type_name,
        size=blob.size,
        created_at=origin.created_at if origin else None,
        attempt=origin.attempt if origin else None,
        item_index=origin.item_index if origin else None,
        inputs=list(origin.inputs) if origin else [],
        cached_from=cached_from,
    )


class OutputReader(Protocol):
    """What :func:`fetch_value` reads: the local :class:`Experiments` or a server's."""

    @property
    def artifacts(self) -> ArtifactStore: ...
    def resolve_run(self, given: str) -> str: ...
    def resolve_artifact(self, given: str) -> str: ...
    def artifact_ref(self, hash_: str) -> ArtifactRef: ...
    def step_output_ref(self, run: str, path: str, output: str | None = None) -> ValueRef: ...


def pick_output(
    outputs: Mapping[str, ValueRef], where: str, output: str | None, status: str | None = None
) -> ValueRef:
    """The output ``output`` of the step run ``where`` names (``"step P of run R"``), or
    (``output`` None) its value as ``steps.X`` sees it. Raises NotFoundError when there is
    no such output (``status``, when known, says what the step run is)."""
    if not outputs:
        state = f" (it is {status})" if status else ""
        raise NotFoundError(f"{where} has no outputs{state}")
    if output is None:
        return outputs_value(outputs)
    if output not in outputs:
        raise NotFoundError(
            f"{where} has no output {output!r}; it has: {', '.join(sorted(outputs))}"
        )
    return outputs[output]


def fetch_value(
    reader: OutputReader,
    target: str,
    step: str | None,
    output: str | None,
    dest: str | Path | None,
) -> FetchView:
    """:meth:`Experiments.fetch` over any reader: a blob (``target`` a hash or prefix) or a
    step's output (``target`` a run, ``step`` a path), written to ``dest`` or previewed."""
    if step is None:
        blob = reader.artifact_ref(reader.resolve_artifact(target))
        ref: ValueRef = blob
        source = blob.hash
    else:
        run_id = reader.resolve_run(target)
        ref = reader.step_output_ref(run_id, step, output)
        source = f"{run_id}:{step}" + (f":{output}" if output else "")
    return fetched(source, ref, reader.artifacts, dest)


def fetched(
    source: str, ref: ValueRef, artifacts: ArtifactStore, dest: str | Path | None
) -> FetchView:
    """Load ``ref`` from ``artifacts`` and write it to ``dest`` or describe it with a preview
    (the formats of :meth:`Experiments.fetch`); ``source`` names what was asked for."""
    view = _fetch_view(source, ref)
    value = artifacts.get(ref)
    if dest is None:
        view.preview = _export.preview(value)
    else:
        view.format = _export.write_value(value, Path(dest))
        view.written_to = str(Path(dest).absolute())
    return view


def _fetch_view(source: str, ref: ValueRef) -> FetchView:
    if isinstance(ref, ArtifactRef):
        return FetchView(
            source=source,
            kind="artifact",
            hash=ref.hash,
            serializer=ref.serializer,
            type=ref.type_name,
            size=ref.size,
        )
    if isinstance(ref, Literal):
        return FetchView(source=source, kind="value", type=type(ref.value).__name__)
    kind = "list" if isinstance(ref, RefList) else "dict"
    assert isinstance(ref, RefList | RefDict)
    return FetchView(source=source, kind=kind, size=sum(a.size for a in artifact_refs(ref)))


def _no_event(kind: str, row: Any) -> str:
    if kind != "task":
        return f"not cacheable: {row.path} is a {kind}; only task steps are memoized"
    if row.status in (StepStatus.PENDING, StepStatus.QUEUED, StepStatus.SKIPPED):
        return f"the step never looked the cache up: it is {row.status.value}"
    if row.status is StepStatus.CANCELLED and not row.attempts:
        return "the step never looked the cache up: it was cancelled before it started"
    return (
        "not cacheable: caching is off for this step (set cache=True on the step or as the "
        "workflow default)"
    )


def _component_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    old_code: dict[str, Any] | None = None,
    new_code: dict[str, Any] | None = None,
) -> list[ComponentChange]:
    """The key components that differ; a changed ``code`` is told part by part when both
    runs recorded what their code was made of (``code: constant FACTOR in pipeline.py
    changed``)."""
    order = ["step_type", "code", "config", "version"]
    names = order + sorted(k for k in {*old, *new} if k not in order)
    changes: list[ComponentChange] = []
    for name in names:
        if (name in old or name in new) and old.get(name) != new.get(name):
            parts = _part_changes(old_code or {}, new_code or {}) if name == "code" else []
            changes.extend(
                parts or [ComponentChange(component=name, old=old.get(name), new=new.get(name))]
            )
    return changes


def _part_changes(old: dict[str, Any], new: dict[str, Any]) -> list[ComponentChange]:
    before, now = old.get("parts"), new.get("parts")
    if not isinstance(before, dict) or not isinstance(now, dict):
        return []
    changes = []
    for part in sorted({*before, *now}):
        if before.get(part) == now.get(part):
            continue
        kind, _, where = part.partition(" ")
        file, _, qualname = where.rpartition(":")
        verb = "added" if part not in before else "removed" if part not in now else "changed"
        text = (
            f"code: {kind} {qualname} in {file} {verb}" if file else f"code: {kind} {where} {verb}"
        )
        changes.append(ComponentChange(component=text, old=before.get(part), new=now.get(part)))
    before_nc, now_nc = old.get("not_covered") or [], new.get("not_covered") or []
    if before_nc != now_nc:
        changes.append(ComponentChange(component="code: not covered", old=before_nc, new=now_nc))
    return changes


def artifact_text(given: str) -> str:
    """``given`` as the lowercase hex digits of a hash or prefix; NotFoundError otherwise."""
    text = given.strip().lower().removeprefix("sha256:")
    if not _HEX.fullmatch(text):
        raise NotFoundError(
            f"{given!r} is not an artifact hash: give the sha256 or at least its first "
            "4 hex digits (see `kaon artifacts RUN`)"
        )
    return text


def one_artifact(given: str, matches: list[str]) -> str:
    """The one hash of ``matches`` (those ``given`` names); NotFoundError naming none or
    the several it matches."""
    text = artifact_text(given)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no recorded artifact has a hash starting with {text!r}")
    shown = ", ".join(h[:16] for h in matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise NotFoundError(f"{text!r} matches {len(matches)} artifacts ({shown}); give more digits")
