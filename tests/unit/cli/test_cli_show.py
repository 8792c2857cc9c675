"""``kaon show`` folds a big run: counts by status, the first failed tasks, pages on request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import AttemptRecord, EventRecord, RunRecord, StepRunRecord, WriteBatch

S = StepStatus
ITEMS = 300
ERROR = {"type": "ValueError", "message": "bad item", "traceback": "Traceback: bad item\n"}


def _failed(i: int) -> bool:
    return i % 5 == 0  # 60 of the 300 items fail


@pytest.fixture
def big(tmp_path: Path) -> str:
    """A store URL holding run ``r1``: a failed task ``prep``, a foreach ``each`` of 300 items
    (one task ``work`` each, 60 failed) and a task ``after`` not started."""
    url = f"sqlite:///{tmp_path}/show.db"
    store = open_store(url)
    batch = WriteBatch()
    batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.FAILED, created_at=1.0))
    batch.insert_step_run(
        StepRunRecord("r1", 1, "prep", "prep", "task", S.FAILED, attempts=1, error=ERROR)
    )
    batch.insert_attempt(AttemptRecord("r1", 1, 1, "failed", 1.0, 2.0, "w", ERROR))
    batch.insert_step_run(StepRunRecord("r1", 2, "each", "each", "foreach", S.FAILED))
    for i in range(ITEMS):
        status = S.FAILED if _failed(i) else S.SUCCEEDED
        frame, task = 3 + 2 * i, 4 + 2 * i
        batch.insert_step_run(
            StepRunRecord("r1", frame, f"each[{i}]", "each", "item", status, 2, i)
        )
        error = ERROR if status is S.FAILED else None
        batch.insert_step_run(
            StepRunRecord(
                "r1", task, f"each[{i}].work", "work", "task", status, frame, None, error=error
            )
        )
    batch.events.append(EventRecord("r1", "run", 3.0))
    store.write(batch)
    store.close()
    return url


def test_show_folds_the_failed_items_and_pages_through_them(
    kaon: Callable[..., tuple[int, str, str]], big: str
) -> None:
    code, out, err = kaon("show", "r1", "--db", big)
    assert code == 0, err
    assert "60 failed, 240 succeeded" in out  # the foreach's line counts its items
    assert "tasks: 61 failed, 240 succeeded" in out
    assert "failed tasks, all levels: the first 10 of 61" in out
    assert "each[40].work" in out and "each[45].work" not in out  # folded after 10
    assert "kaon show r1 --status failed --page 1" in out
    assert len(out.splitlines()) < 40

    code, out, _ = kaon("show", "r1", "--db", big, "--status", "failed", "--page", "2", "-n", "25")
    assert code == 0
    shown = [line.split()[0] for line in out.splitlines() if ".work" in line and "failed" in line]
    assert shown[0] == "each[120].work" and len(shown) == 25  # tasks 26-50 of 61, by creation
    assert "26-50 of 61; next: kaon show r1 --status failed --page 3 --limit 25" in out

    code, out, _ = kaon("show", "r1", "--db", big, "--status", "failed", "--json", "-n", "5")
    page = json.loads(out)
    assert page["steps_total"] == 61 and [s["path"] for s in page["steps"]][:2] == [
        "prep",
        "each[0].work",
    ]
    code, _, err = kaon("show", "r1", "--db", big, "--status", "nope")
    assert code == 2 and "--status must be one of" in err


def test_show_all_streams_every_level_as_one_json_document(
    kaon: Callable[..., tuple[int, str, str]], big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaon.cli import show_view

    monkeypatch.setattr(show_view, "STREAM_PAGE", 64)  # several pages for 602 step runs
    code, out, err = kaon("show", "r1", "--db", big, "--all", "--json")
    assert code == 0, err
    document = json.loads(out)
    paths = [step["path"] for step in document["steps"]]
    assert len(paths) == document["steps_total"] == 2 + 2 * ITEMS
    assert paths[:3] == ["prep", "each", "each[0]"] and paths[-1] == f"each[{ITEMS - 1}].work"
    code, out, _ = kaon("show", "r1", "--db", big, "--all")
    assert code == 0 and f"each[{ITEMS - 1}].work" in out and out.count(" step ") == 1


FLOW = """name: partly
steps:
  - id: each
    foreach: "${{ ITEMS }}"
    steps:
      - id: work
        shell: "test $((KAON_INDEX % 3)) -ne 0"
        on_failure: ignore
""".replace("ITEMS", str(list(range(35))))


def test_the_end_of_run_report_folds_failed_items_too(
    kaon: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    flow = tmp_path / "partly.yaml"
    flow.write_text(FLOW)
    _, out, err = kaon("run", str(flow))
    assert "failed tasks, all levels: the first 10 of 12" in out, (out, err)
    report = out[out.index("failed tasks, all levels") :]
    assert "each[27].work" in report and "each[30].work" not in report
    assert "--status failed --page 1" in report


def test_a_page_past_the_last_step_says_so(
    kaon: Callable[..., tuple[int, str, str]], big: str
) -> None:
    """``--offset`` past the end printed ``steps 2-100 of 2`` (and ``--page 2`` of the folded
    view ``steps 2-1000 of 2``); a page asked with ``--page`` pointed on with ``--offset``."""
    code, out, err = kaon("show", "r1", "--db", big, "--limit", "1", "--offset", "100")
    assert code == 0, err
    assert "no steps at offset 100 (2 in all)" in out and "-100 of" not in out
    code, out, _ = kaon("show", "r1", "--db", big, "--page", "2")
    assert "no steps at offset 1000 (2 in all)" in out
    code, out, _ = kaon("show", "r1", "--db", big, "--all", "--limit", "5", "--offset", "900")
    assert "no steps at offset 900 (602 in all)" in out
    code, out, _ = kaon("show", "r1", "--db", big, "--all", "--limit", "5", "--page", "2")
    assert "steps 6-10 of 602; more with --page 3 --limit 5" in out
