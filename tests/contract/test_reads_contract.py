"""Bounded run reads (kaon.store.reads) behave the same on every SQL backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.errors import NotFoundError
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import (
    EventRecord,
    LogRecord,
    MetricRecord,
    RunRecord,
    StepRunRecord,
    WriteBatch,
)
from kaon.store.reads import SORT_KEYS, RunHistoryQuery, SQLRunReads, StepQuery
from kaon.store.sql import SQLStore

S = StepStatus
ITEMS = 30


def _status(i: int) -> StepStatus:
    return S.FAILED if i % 10 == 3 else S.RUNNING if i % 7 == 1 else S.SUCCEEDED


def build(store: SQLStore) -> None:
    """Run r1: task ``a``, foreach ``each`` of 30 items (frame + body task each)."""
    batch = WriteBatch()
    batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
    batch.insert_step_run(StepRunRecord("r1", 1, "a", "a", "task", S.SUCCEEDED, attempts=1))
    batch.insert_step_run(StepRunRecord("r1", 2, "each", "each", "foreach", S.RUNNING))
    for i in range(ITEMS):
        frame, task = 3 + 2 * i, 4 + 2 * i
        item = {"region": f"r{i}", "tag": "Big%_Tag"} if i == 17 else {"region": f"r{i}"}
        batch.insert_step_run(
            StepRunRecord("r1", frame, f"each[{i}]", "each", "item", _status(i), 2, i, item)
        )
        batch.insert_step_run(
            StepRunRecord(
                "r1",
                task,
                f"each[{i}].t",
                "t",
                "task",
                _status(i),
                frame,
                started_at=100.0,
                ended_at=100.0 + (i % 5),
            )
        )
    for n in range(10):
        batch.logs.append(LogRecord("r1", 1, 1, float(n), "stdout", f"line {n}"))
    batch.events.append(EventRecord("r1", "run", 1.0))
    batch.events.append(EventRecord("r1", "step", 2.0, step_run_id=1))
    store.write(batch)


class ReadsContract:
    @pytest.fixture
    def reads(self, store_url: str) -> Iterator[SQLRunReads]:
        store = open_store(store_url)
        assert isinstance(store, SQLStore)
        build(store)
        yield SQLRunReads(store)
        store.close()

    def test_counts_are_computed_in_the_database(self, reads: SQLRunReads) -> None:
        tasks = reads.status_counts("r1")
        assert tasks == {S.SUCCEEDED: 23, S.FAILED: 3, S.RUNNING: 5}
        assert sum(reads.status_counts("r1", "item").values()) == ITEMS
        counts = reads.children_counts("r1", [2, 3, 1])
        assert counts[2] == {S.SUCCEEDED: 22, S.FAILED: 3, S.RUNNING: 5}
        assert counts[3] == {S.SUCCEEDED: 1} and 1 not in counts
        with pytest.raises(NotFoundError):
            reads.status_counts("nope")

    def test_pages_filter_and_sort(self, reads: SQLRunReads) -> None:
        top = reads.step_page("r1", StepQuery())
        assert top.total == 2 and [r.path for r in top.rows] == ["a", "each"]
        page = reads.step_page("r1", StepQuery(parent_id=2, limit=5, offset=25))
        assert page.total == ITEMS and [r.index for r in page.rows] == [25, 26, 27, 28, 29]
        failed = reads.step_page("r1", StepQuery(parent_id=2, statuses=(S.FAILED,)))
        assert [r.index for r in failed.rows] == [3, 13, 23]
        ranged = reads.step_page(
            "r1", StepQuery(parent_id=2, index_from=10, index_to=12, descending=True)
        )
        assert [r.index for r in ranged.rows] == [12, 11, 10]
        by_item = reads.step_page("r1", StepQuery(parent_id=2, text="big%_tag"))
        assert [r.index for r in by_item.rows] == [17]
        assert reads.step_page("r1", StepQuery(parent_id=2, text="%")).total == 1
        body = reads.step_page("r1", StepQuery(parent_id=9, step_id="t"))
        assert [r.path for r in body.rows] == ["each[3].t"]
        for key in SORT_KEYS:  # every sort key works on every backend, ties broken by id
            rows = reads.step_page("r1", StepQuery(parent_id=2, sort=key, limit=3)).rows
            assert len(rows) == 3
        longest = reads.step_page("r1", StepQuery(parent_id=None, sort="duration"))
        assert longest.total == 2
        with pytest.raises(NotFoundError):
            reads.step_page("nope", StepQuery())

    def test_deep_pages_seek_the_index_and_match_offset_pages(self, reads: SQLRunReads) -> None:
        for descending in (False, True):
            for offset in (0, 1, 7, 26, 29, 30):
                query = StepQuery(parent_id=2, limit=4, offset=offset, descending=descending)
                plain = [r.index for r in reads.step_page("r1", query).rows]
                seeking = [r.index for r in reads.step_page("r1", query, total=ITEMS).rows]
                # A total that does not match dense indexes falls back to the offset.
                fallback = reads.step_page("r1", query, total=ITEMS + 1).rows
                expected = list(range(ITEMS))[::-1] if descending else list(range(ITEMS))
                assert plain == seeking == expected[offset : offset + 4]
                assert [r.index for r in fallback] == plain

    def test_run_history_filters_in_the_database(self, reads: SQLRunReads) -> None:
        batch = WriteBatch()
        for i, status in enumerate((RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SUCCEEDED)):
            batch.runs.append(
                RunRecord(
                    f"h{i}",
                    "hist",
                    "h",
                    status,
                    params={"region": f"Eu-{i}"},
                    created_at=100.0 + i,
                    labels={"by": "ana"},
                )
            )
        reads.store.write(batch)
        page = reads.run_history(RunHistoryQuery("hist", limit=2))
        assert page.total == 3 and [r.id for r in page.rows] == ["h2", "h1"]
        failed = reads.run_history(RunHistoryQuery("hist", statuses=(RunStatus.FAILED,)))
        assert [r.id for r in failed.rows] == ["h1"]
        assert [r.id for r in reads.run_history(RunHistoryQuery("hist", text="eu-2")).rows] == [
            "h2"
        ]
        assert reads.run_history(RunHistoryQuery("hist", text="ANA")).total == 3
        ranged = reads.run_history(RunHistoryQuery("hist", since=100.5, until=101.0))
        assert [r.id for r in ranged.rows] == ["h1"]

    def test_text_search_finds_json_text_as_written(self, reads: SQLRunReads) -> None:
        """A search finds a parameter, label or item by its text as written, not by the
        escaped form its JSON is stored in (SQLite keeps ``ü`` as ``\\u00fc``): non-ASCII
        text, quotes and backslashes."""
        values = ["ünï", 'say "hi"', "C:\\tmp\\x", "line\nbreak", "😀 smile"]
        batch = WriteBatch()
        for i, value in enumerate(values):
            batch.runs.append(
                RunRecord(
                    f"t{i}",
                    "text",
                    "h",
                    RunStatus.SUCCEEDED,
                    params={"p": value},
                    created_at=200.0 + i,
                    labels={"l": f"lab-{value}"},
                )
            )
        batch.runs.append(RunRecord("tz", "text", "h", RunStatus.SUCCEEDED, created_at=300.0))
        batch.insert_step_run(StepRunRecord("tz", 1, "each", "each", "foreach", S.RUNNING))
        for i, value in enumerate(["Zürich", 'a "quoted" b', "back\\slash"]):
            batch.insert_step_run(
                StepRunRecord("tz", 2 + i, f"each[{i}]", "each", "item", S.SUCCEEDED, 1, i, value)
            )
        reads.store.write(batch)

        def runs(text: str) -> list[str]:
            return [r.id for r in reads.run_history(RunHistoryQuery("text", text=text)).rows]

        def items(text: str) -> list[int | None]:
            page = reads.step_page("tz", StepQuery(parent_id=1, text=text))
            assert page.total == len(page.rows)
            return [r.index for r in page.rows]

        for i, value in enumerate(values):
            assert runs(value) == [f"t{i}"], value
            assert runs(f"lab-{value}") == [f"t{i}"], value
        assert runs("ün") == ["t0"] and runs('"hi"') == ["t1"] and runs("\\tmp") == ["t2"]
        assert runs("\\u00fc") == []  # the escape is how it is stored, not what was written
        assert items("Zürich") == [0] and items("zür") == [0]
        assert items('"quoted"') == [1] and items("back\\slash") == [2]
        assert runs("") == ["tz", "t4", "t3", "t2", "t1", "t0"]

    def test_last_progress_of_a_step(self, reads: SQLRunReads) -> None:
        batch = WriteBatch()
        for fraction in (0.2, 0.6):
            data = {"fraction": fraction, "message": "m", "attempt": 1}
            batch.events.append(EventRecord("r1", "progress", 3.0, data, step_run_id=4))
        batch.events.append(EventRecord("r1", "log", 4.0, {}, step_run_id=4))
        reads.store.write(batch)
        assert reads.last_progress("r1", 4) == {"fraction": 0.6, "message": "m", "at": 3.0}
        assert reads.last_progress("r1", 1) is None
        later = WriteBatch()  # another step's progress, after: not this step's
        later.events.append(EventRecord("r1", "progress", 5.0, {"fraction": 0.9}, step_run_id=6))
        reads.store.write(later)
        assert reads.last_progress("r1", 4) == {"fraction": 0.6, "message": "m", "at": 3.0}

    def test_a_page_of_one_status_and_kind_across_levels(self, reads: SQLRunReads) -> None:
        failed = reads.all_levels_page("r1", limit=2, statuses=(S.FAILED,), kind="task")
        assert failed.total == 3 and [r.path for r in failed.rows] == ["each[3].t", "each[13].t"]
        rest = reads.all_levels_page("r1", limit=2, offset=2, statuses=(S.FAILED,), kind="task")
        assert [r.path for r in rest.rows] == ["each[23].t"]
        frames = reads.all_levels_page("r1", limit=10, statuses=(S.FAILED,), kind="item")
        assert [r.path for r in frames.rows] == ["each[3]", "each[13]", "each[23]"]
        with pytest.raises(NotFoundError):
            reads.all_levels_page("nope", limit=1, statuses=(S.FAILED,))

    def test_one_step_logs_and_events(self, reads: SQLRunReads) -> None:
        assert reads.step_run("r1", "each[4].t").parent_id == 11
        assert reads.step_run_by_id("r1", 11) is not None
        assert reads.step_run_by_id("r1", 999) is None
        assert reads.paths("r1", [1, 2, 2]) == {1: "a", 2: "each"}
        tail = reads.log_window("r1", 1, limit=3)
        assert [r.text for r in tail] == ["line 7", "line 8", "line 9"]
        first = tail[0].id
        assert first is not None
        before = reads.log_window("r1", 1, before_id=first, limit=2)
        assert [r.text for r in before] == ["line 5", "line 6"]
        after = reads.log_window("r1", 1, after_id=first, limit=10)
        assert [r.text for r in after] == ["line 8", "line 9"]
        assert [r.text for r in reads.log_window("r1", 1, text="LINE 4")] == ["line 4"]
        assert reads.last_event_id("r1") > 0 and reads.last_event_id("nope") == 0

    def test_metric_pages_cached_tasks_and_steps_by_path(self, reads: SQLRunReads) -> None:
        batch = WriteBatch()
        for n in range(5):
            batch.metrics.append(MetricRecord("r1", 4 + 2 * (n % 2), 1, "loss", float(n), 1.0))
        cached = StepRunRecord("r1", 100, "c", "c", "task", S.CACHED, cached_from="r0:x")
        batch.insert_step_run(cached)
        reads.store.write(batch)
        first = reads.metrics_after("r1", 0, 3)
        assert [m.value for m in first] == [0.0, 1.0, 2.0]
        rest = reads.metrics_after("r1", first[-1].id or 0, 3)
        assert [m.value for m in rest] == [3.0, 4.0]
        one = reads.metrics_after("r1", 0, 10, step_run_id=6)
        assert [m.value for m in one] == [1.0, 3.0]
        assert reads.metrics_after("r1", 0, 10, name="loss") == first + rest
        assert reads.metrics_after("r1", 0, 10, step_run_id=6, name="acc") == []
        assert reads.cached_tasks_after("r1", 0, 10) == [(100, "c", "r0:x")]
        assert reads.cached_tasks_after("r1", 100, 10) == []
        found = reads.step_runs_at("r1", ["each[2]", "a", "nowhere"])
        assert sorted(found) == ["a", "each[2]"] and found["each[2]"].item == {"region": "r2"}

    def test_the_last_log_id_of_a_run_is_its_largest(self, reads: SQLRunReads) -> None:
        """Where a restart's log tail starts: one read of the run's largest log id (0 when
        it has none), not a walk through its log."""
        every = reads.log_window("r1", None, after_id=0, limit=100)
        assert len(every) == 10 and reads.last_log_id("r1") == every[-1].id
        other = WriteBatch()
        other.runs.append(RunRecord("r2", "wf", "h", RunStatus.RUNNING, created_at=2.0))
        other.insert_step_run(StepRunRecord("r2", 900, "a", "a", "task", S.SUCCEEDED))
        other.logs.append(LogRecord("r2", 900, 1, 1.0, "stdout", "another run's line"))
        reads.store.write(other)
        assert reads.last_log_id("r1") == every[-1].id  # another run's later line is not r1's
        assert reads.last_log_id("r2") > reads.last_log_id("r1")
        assert reads.last_log_id("nope") == 0


class TestSQLiteReads(ReadsContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/reads.db"


class TestPostgresReads(ReadsContract):
    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        return pg_url
