"""The core `kaon` commands, run in-process with the inline executor and a tmp home."""

from __future__ import annotations

import json
from pathlib import Path

FLOWS = str(Path(__file__).with_name("cli_flows.py"))


def _run_id(stdout: str) -> str:
    return stdout.splitlines()[0].strip()


def test_run_prints_id_first_and_exits_zero(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("run", f"{FLOWS}:squares", "-p", "n=3")
    assert code == 0
    assert _run_id(out).startswith("20")  # the id, before the live view and the table
    code, out, _ = kaon("run", f"{FLOWS}:squares", "-p", "n=3", "--json")
    assert code == 0
    detail = json.loads(out)  # --json: exactly one document, nothing before it
    assert detail["id"].startswith("20") and detail["status"] == "succeeded"
    assert detail["params"] == {"n": 3}
    steps = {s["path"]: s for s in detail["steps"]}
    assert steps["total"]["outputs"]["return"] == {
        "kind": "value",
        "value": 5,
        "hash": None,
        "serializer": None,
        "size": None,
        "type": None,
        "items": None,
    }
    assert steps["each"]["children"] == {"succeeded": 3}
    assert [m["name"] for m in detail["metrics"]] == ["x", "x", "x"]


def test_failed_run_exits_one_and_show_has_traceback(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("run", f"{FLOWS}:fragile")
    assert code == 1
    run_id = _run_id(out)
    code, out, _ = kaon("show", run_id[:12])
    assert code == 0
    assert "RuntimeError: asked to explode" in out and "Traceback" in out
    code, out, _ = kaon("logs", run_id, "explode")
    assert code == 0 and "attempt 1: RuntimeError: asked to explode" in out


def test_restart_and_skip_a_failed_run(kaon) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = kaon("run", f"{FLOWS}:fragile")
    run_id = _run_id(out)
    code, _, err = kaon("skip", run_id, "explode", "--output", "{bad json")
    assert code == 2 and "--output is not a valid JSON value" in err
    code, out, _ = kaon("skip", run_id, "explode", "--output", "5", "--json")
    assert code == 0
    detail = json.loads(out)
    assert detail["status"] == "succeeded"
    steps = {s["path"]: s for s in detail["steps"]}
    assert steps["explode"]["status"] == "skipped"
    assert steps["after"]["outputs"]["return"]["value"] == 5
    code, out, _ = kaon("restart", run_id, "--from", "after", "--json")
    assert code == 0 and json.loads(out)["restarts"] == 2
    code, _, err = kaon("restart", run_id, "--from", "nowhere")
    assert code == 2 and "nowhere" in err


def test_runs_list_and_filters(kaon) -> None:  # type: ignore[no-untyped-def]
    kaon("run", f"{FLOWS}:squares")
    kaon("run", f"{FLOWS}:fragile")
    code, out, _ = kaon("runs", "--json")
    assert code == 0
    assert [r["workflow"] for r in json.loads(out)] == ["fragile", "squares"]
    code, out, _ = kaon("runs", "--status", "failed", "--json")
    assert [r["status"] for r in json.loads(out)] == ["failed"]
    code, _, err = kaon("runs", "--status", "exploded")
    assert code == 2 and "--status must be one of" in err


def test_bad_parameters_and_definitions_are_rejected_before_running(
    kaon,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    code, out, err = kaon("run", f"{FLOWS}:squares", "-p", "n=many")
    assert code == 2 and out == "" and "params.n" in err
    code, _, err = kaon("run", f"{FLOWS}:squares", "-p", "nope")
    assert code == 2 and "key=value" in err
    code, _, err = kaon("run", f"{FLOWS}:squares", "-p", "m=1")
    assert code == 2 and "params.m" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    shell: echo\n    needs: [zz]\n")
    code, out, err = kaon("validate", str(bad), "--json")
    assert code == 2
    problems = json.loads(out)["problems"]
    assert problems[0]["line"] == 5 and "zz" in problems[0]["message"]
    code, _, err = kaon("run", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


def test_unknown_run_and_resume_of_finished_run(kaon) -> None:  # type: ignore[no-untyped-def]
    code, _, err = kaon("show", "nope")
    assert code == 2 and "no Kaon store at" in err  # reading never creates a store
    _, out, _ = kaon("run", f"{FLOWS}:squares")
    run_id = _run_id(out)
    code, _, err = kaon("show", "nope")
    assert code == 2 and "no run matches 'nope'" in err
    code, _, err = kaon("resume", run_id)
    assert code == 0 and "already succeeded" in err
    code, _, err = kaon("kill", run_id)
    assert code == 2 and "already succeeded" in err


def test_validate_ok(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("validate", f"{FLOWS}:squares", "--json")
    assert code == 0 and json.loads(out) == {"valid": True, "workflow": "squares", "steps": 4}


def test_validate_refuses_a_misspelt_retry_on_name(kaon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: x\nsteps:\n  - {id: a, shell: echo, retry: {retry_on: [ValueErorr]}}\n")
    code, _, err = kaon("validate", str(flow))
    assert code != 0 and "did you mean 'ValueError'?" in err and "retry.retry_on[0]" in err


def test_schema_documents_the_json_outputs(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("schema")
    assert code == 0
    documents = json.loads(out)
    assert set(documents) == {"run", "run-detail", "log"}
    assert "steps" in documents["run-detail"]["properties"]
    assert documents["log"]["type"] == "array"
    code, out, _ = kaon("run", f"{FLOWS}:squares", "--json")
    detail = json.loads(out)
    assert set(detail) <= set(documents["run-detail"]["properties"])
    code, _, err = kaon("schema", "nope")
    assert code == 2 and "unknown schema" in err
