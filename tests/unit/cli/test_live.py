"""Visible progress: bars with done/total and ETA, foreach totals, recent log lines; off a
terminal, timestamped lines per transition (``--logs``, ``--quiet``); NDJSON ``--events``;
``kaon watch`` of a run started elsewhere."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from kaon.cli.live import PlainReporter, RunProgress
from kaon.store.base import EventRecord

FLOWS = str(Path(__file__).with_name("progress_flows.py"))
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _step(path: str, status: str, row: int, at: float = 100.0) -> EventRecord:
    return EventRecord("r1", "step", at, {"path": path, "status": status}, row)


def _progress(row: int, done: int, total: int, at: float) -> EventRecord:
    data = {"fraction": done / total, "message": "", "attempt": 1, "done": done, "total": total}
    return EventRecord("r1", "progress", at, data, row)


def _render(progress: RunProgress) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(progress.render())
    return buffer.getvalue()


def test_the_live_view_shows_bars_with_totals_and_eta_foreach_totals_and_logs() -> None:
    state = RunProgress("r1", "flow")
    state.feed([_step("train", "running", 1), _progress(1, 10, 200, 100.0)])
    state.feed([_progress(1, 30, 200, 110.0)])  # 20 units in 10 s: 170 left take 85 s
    state.feed([EventRecord("r1", "foreach", 100.0, {"path": "each", "items": 100}, 2)])
    state.feed([_step(f"each[{i}]", "succeeded", 10 + i) for i in range(12)])
    state.feed([_step("each[12]", "running", 30)])
    state.feed_logs("train", ["epoch 3 loss 0.25"])
    shown = _render(state)
    assert "30/200 15% ETA 1m25s" in shown
    assert "[###" in shown  # the bar
    assert "1 running, 12 succeeded (12 of 100 done)" in shown
    assert "[train] epoch 3 loss 0.25" in shown


def test_off_a_terminal_each_transition_is_one_timestamped_line() -> None:
    stream = io.StringIO()
    clock = iter([0.0, 1.0, 2.0, 9.0, 10.0, 11.0, 12.0, 13.0])
    plain = PlainReporter(
        RunProgress("r1", "flow"), logs=True, stream=stream, clock=lambda: next(clock)
    )
    plain.feed([_step("train", "running", 1, 100.0)])
    plain.feed([_progress(1, 1, 4, 101.0)])
    plain.feed([_progress(1, 2, 4, 102.0)])  # within 5 s of the last: not printed
    plain.feed([_progress(1, 4, 4, 103.0)])  # complete: printed
    plain.feed_logs("train", ["hello"])
    plain.feed([_step("train", "succeeded", 1, 104.0)])
    plain.feed([EventRecord("r1", "run", 105.0, {"status": "succeeded"})])
    assert "run r1" not in stream.getvalue()  # held back until the last log lines are out
    plain.finish()
    lines = stream.getvalue().splitlines()
    assert all(re.match(STAMP + " ", line) for line in lines), lines
    assert [line.split(" ", 1)[1] for line in lines] == [
        "train running",
        "train 1/4 25%",
        "train 4/4 100%",
        "[train] hello",
        "train succeeded (4.00s)",
        "run r1 succeeded",
    ]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    made = {k: v for k, v in os.environ.items() if not k.startswith("KAON_")}
    made.update(KAON_HOME=str(tmp_path / "home"), KAON_EXECUTOR="inline")
    return made


def test_run_off_a_terminal_prints_transitions_and_the_step_log_lines(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("run", f"{FLOWS}:crunching")
    assert code == 0
    lines = out.splitlines()
    run_id = lines[0]
    said = [line.split(" ", 1)[1] for line in lines if re.match(STAMP + " ", line)]
    assert said[:2] == [f"run {run_id} pending", f"run {run_id} running"]  # as on a server
    assert "crunch running" in said and "crunch 4/4 100%" in said
    assert [s for s in said if s.startswith("[crunch]")] == [
        f"[crunch] batch {n} done" for n in range(1, 5)
    ]
    assert "each[*] 3 succeeded (3 of 3 done)" in said
    assert said[-1] == f"run {run_id} succeeded"
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--no-logs")
    assert code == 0 and "[crunch]" not in out and "crunch running" in out
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--quiet")
    run_id, final = out.splitlines()
    assert code == 0 and final == f"run {run_id} succeeded"


def test_run_events_is_ndjson_ending_with_the_result(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--events")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert {d["type"] for d in documents[:-1]} == {"event"}
    kinds = {d["kind"] for d in documents[:-1]}
    assert {"run", "step", "progress", "foreach"} <= kinds
    # The run's first event, committed when it was created, is read from the store (with
    # its id); those the engine hands over as it commits them are not yet numbered.
    assert documents[0]["kind"] == "run" and documents[0]["data"] == {"status": "pending"}
    assert all("id" not in d for d in documents[1:-1])  # not `"id": 0`
    assert documents[-1]["type"] == "result" and documents[-1]["status"] == "succeeded"
    code, out, _ = kaon("run", f"{FLOWS}:nope", "--events")
    assert code == 2 and len(out.splitlines()) == 1
    assert json.loads(out)["error"]["type"] == "DefinitionError"


def test_run_events_start_as_a_servers_feed_does(kaon) -> None:  # type: ignore[no-untyped-def]
    """A server's feed of a run starts with ``run pending`` (committed when the run was
    created); ``kaon run --events`` started with ``run running``: it showed only what its
    engine committed."""
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--events")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    firsts = [(d["kind"], d["data"].get("status")) for d in documents[:2]]
    assert firsts == [("run", "pending"), ("run", "running")]
    assert documents[0]["id"] == 1 and documents[0]["run_id"] == documents[-1]["id"]


def test_watch_follows_a_run_started_elsewhere_until_it_ends(
    kaon,
    env: dict[str, str],
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    kaon_bin = str(Path(sys.executable).parent / "kaon")
    started = subprocess.Popen(
        [kaon_bin, "run", f"{FLOWS}:crunching", "-p", "batches=6", "-p", "pause=0.4"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert started.stdout is not None
        run_id = started.stdout.readline().strip()
        began = time.monotonic()
        code, out, _ = kaon("watch", run_id[:17], "--logs")
        assert code == 0 and time.monotonic() - began > 0.5  # it waited for the end
        said = [line.split(" ", 1)[1] for line in out.splitlines() if re.match(STAMP, line)]
        assert said[-1] == f"run {run_id} succeeded"
        assert "[crunch] batch 6 done" in out
    finally:
        started.wait(timeout=60)
    code, out, _ = kaon("watch", run_id, "--quiet")
    assert code == 0 and out.strip() == f"run {run_id} succeeded"
    code, _, err = kaon("watch", "nope")
    assert code == 2 and "nope" in err


def test_watch_exits_with_the_outcome_of_a_failed_run(kaon) -> None:  # type: ignore[no-untyped-def]
    flows = str(Path(__file__).with_name("cli_flows.py"))
    code, out, _ = kaon("run", f"{flows}:fragile", "--quiet")
    run_id = out.splitlines()[0]
    assert code == 1
    code, out, _ = kaon("watch", run_id)
    assert code == 1
    said = [line.split(" ", 1)[1] for line in out.splitlines() if re.match(STAMP, line)]
    assert f"run {run_id} failed" in " ".join(said)


def test_restart_shows_only_the_log_lines_of_its_own_attempts(kaon) -> None:  # type: ignore[no-untyped-def]
    """A restart printed every log line the run had ever written, stamped with the time of
    the restart, as if the steps it reused had just run (a big run's whole log again)."""
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--quiet")
    run_id = out.splitlines()[0]
    code, out, _ = kaon("restart", run_id, "--from", "each", "--logs")
    assert code == 0 and f"run {run_id} succeeded" in out
    assert "[crunch]" not in out  # crunch is reused, not run again
    code, out, _ = kaon("restart", run_id, "--from", "crunch", "--logs")
    assert code == 0 and out.count("[crunch] batch 1 done") == 1  # its new attempt's only


def test_restart_finds_where_the_log_ends_without_reading_the_log(kaon, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A restart paged through the run's whole log, 200 lines a read, to learn its last
    line's id (a run of 200,000 lines: 1,000 reads, or 1,000 HTTP calls to a server); a
    quiet restart, which tails nothing, now reads none of the log."""
    from kaon.service.local import LocalService

    code, out, _ = kaon("run", f"{FLOWS}:crunching", "-p", "batches=450", "--quiet")
    assert code == 0
    run_id = out.splitlines()[0]
    windows: list[int] = []
    log_window = LocalService.log_window

    def counted(self: LocalService, *args: object, **kwargs: object) -> object:
        windows.append(1)
        return log_window(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalService, "log_window", counted)
    code, out, _ = kaon("restart", run_id, "--from", "crunch", "--quiet")
    assert code == 0 and out.strip() == f"run {run_id} succeeded"
    assert windows == []


def test_restart_and_resume_take_the_same_output_options(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("run", f"{FLOWS}:crunching", "--quiet")
    run_id = out.splitlines()[0]
    code, out, _ = kaon("restart", run_id, "--from", "crunch", "--events")
    assert code == 0 and json.loads(out.splitlines()[-1])["type"] == "result"
    code, out, _ = kaon("resume", run_id, "--quiet")
    assert code == 0 and out.strip() == f"run {run_id} succeeded"
