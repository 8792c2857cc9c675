"""Exit codes as documented (2: the user can fix it; 3: Kaon failed) and messages that carry
their cause."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kaon.api.app import build_services
from kaon.errors import DefinitionError
from kaon.model.params import strict_json
from kaon.service import LocalService, Settings
from kaon.service.auth import LOCAL_PRINCIPAL

DIVIDE = textwrap.dedent(
    """\
    name: divide
    params:
      n: {type: int, default: 0}
    steps:
      - id: a
        shell: echo hi
        inputs: {v: "${{ 10 / params.n }}"}
    """
)


def test_a_run_time_expression_error_prints_its_cause(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    code, out, _ = kaon("run", str(flow))
    assert code == 1
    assert "division by zero" in out and "problem found" not in out
    run_id = out.splitlines()[0].strip()
    code, out, _ = kaon("show", run_id)
    assert code == 0 and "division by zero" in out and "problem found" not in out


def test_resume_of_a_run_another_engine_holds_exits_2(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    settings = Settings.from_env()
    with LocalService(settings) as service:
        spec = service.validate(str(flow))
        run = service.create_run(spec, {"n": 1})
        assert service.store.acquire_lease(run.id, "someone-else", 600) is not None
    code, _, err = kaon("resume", run.id)
    assert code == 2, err
    assert run.id in err and "Kaon failed" not in err


def test_bad_executor_and_db_exit_2(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    code, _, err = kaon("run", str(flow), "--executor", "nope")
    assert code == 2 and "--executor" in err and "'nope'" in err
    code, _, err = kaon("run", str(flow), "--db", "nope://x")
    assert code == 2 and "nope://x" in err


def test_validate_needs_no_setting(kaon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    monkeypatch.setenv("KAON_WORKERS", "abc")
    monkeypatch.setenv("KAON_EXECUTOR", "nope")
    monkeypatch.setenv("KAON_DB", "::")
    code, out, err = kaon("validate", str(flow))
    assert "valid" in out
    assert code == 0, err
    code, _, err = kaon("runs")
    assert code == 2 and "KAON_EXECUTOR: unknown executor 'nope'" in err
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    code, _, err = kaon("runs")
    assert code == 2 and "KAON_WORKERS must be a whole number of workers, got 'abc'" in err


# An expression whose estimate is seconds: over the default 100 ms, under a raised budget.
_HUNDRED = "[" + ",".join(map(str, range(100))) + "]"
COSTLY = (
    "name: costly\n"
    "params:\n"
    f"  s: {{type: str, default: {'x' * 200}}}\n"
    "steps:\n"
    "  - id: a\n"
    "    shell: echo hi\n"
    "    inputs:\n"
    f'      v: "${{{{ size({_HUNDRED}.map(a, {_HUNDRED}.map(b, params.s + params.s))) }}}}"\n'
)


def test_validate_uses_run_budget(kaon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """``kaon validate`` judged expressions by the default budget whatever
    ``KAON_EXPRESSION_TIME_MS`` said, so it refused a file that ``kaon run`` (and ``kaon
    push``) accepted under a raised budget, and accepted one they refused under a lowered one;
    a malformed budget went unnoticed."""
    from kaon.model.expressions import configure_budget, current_budget

    flow = tmp_path / "costly.yaml"
    flow.write_text(COSTLY)
    previous = current_budget()
    try:
        code, _, err = kaon("validate", str(flow))
        assert code == 2 and "over its budget" in err, err
        monkeypatch.setenv("KAON_EXPRESSION_TIME_MS", "1000000")
        monkeypatch.setenv("KAON_EXPRESSION_MAX_BYTES", str(1 << 40))
        code, out, err = kaon("validate", str(flow))
        assert code == 0 and "valid" in out, err
        code, out, err = kaon("run", str(flow), "--quiet")
        assert code == 0, out + err
        monkeypatch.setenv("KAON_EXPRESSION_TIME_MS", "abc")
        code, _, err = kaon("validate", str(flow))
        assert code == 2 and "KAON_EXPRESSION_TIME_MS='abc'" in err, err
    finally:
        configure_budget(previous)


def test_push_refuses_a_bad_limit(kaon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """``KAON_PUSH_TIMEOUT_S=soon`` was silently the default 60 s."""
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: w\nsteps:\n  - id: a\n    shell: echo hi\n")
    monkeypatch.setenv("KAON_PUSH_TIMEOUT_S", "soon")
    code, _, err = kaon("push", str(flow))
    assert code == 2 and "KAON_PUSH_TIMEOUT_S='soon'" in err, err
    # a server refuses it before it creates its store or starts a part (the engine's process
    # died of it, with a traceback, after the store was made)
    home = tmp_path / "server-home"
    env = {**os.environ, "KAON_PUSH_TIMEOUT_S": "", "KAON_PUSH_MEMORY_MB": "0"}
    command = [sys.executable, "-m", "kaon", "server", "--home", str(home), "--port", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "KAON_PUSH_MEMORY_MB='0'" in done.stderr and "Traceback" not in done.stderr
    assert not home.exists()


def test_a_signal_name_the_server_refuses_is_refused_here_too(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``kaon signal ''`` (or ``'data ready'``) was stored by the local store, which no wait
    step could use, while ``POST /signals`` refused it; a wait on such a name validated."""
    for name in ("", "data ready"):
        code, _, err = kaon("signal", name, "x=1")
        assert code == 2 and "name: signal name" in err and "not valid" in err, err
    flow = tmp_path / "wait.yaml"
    flow.write_text("name: w\nsteps:\n  - id: w\n    wait: {signal: data ready}\n")
    code, _, err = kaon("validate", str(flow))
    assert code == 2 and "steps[0].wait.signal" in err and "'data ready'" in err, err
    code, _, err = kaon("signal", "data_ready", "x=1")
    assert code == 0, err


def test_signal_values_are_standard_json(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="NaN"):
        strict_json("[NaN]")
    code, out, err = kaon("signal", "ready", "x=NaN", "y=[1]", "--json")
    assert code == 0, err
    assert '"x": "NaN"' in out  # kept as the text it is, never a bare NaN
    services = build_services(Settings.from_env())
    try:
        with pytest.raises(DefinitionError, match=r"params\.v"):
            services.registry.send_signal("ready", {"v": [float("inf")]}, LOCAL_PRINCIPAL)
    finally:
        services.runs.close()


def _mount_read_only(where: Path) -> bool:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_a_state_folder_on_a_read_only_filesystem(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    read_only = tmp_path / "ro"
    if not _mount_read_only(read_only):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        code, _, err = kaon("run", str(flow), "--home", str(read_only))
        assert code == 2 and f"the state folder {read_only} is not writable" in err
        code, _, err = kaon("run", str(flow), "--home", str(read_only / "sub"))
        assert code == 2 and "Read-only file system" in err and "Traceback" not in err
    finally:
        subprocess.run(["umount", str(read_only)], check=False)


def test_json_errors_carry_the_same_cause(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    flow = tmp_path / "divide.yaml"
    flow.write_text(DIVIDE)
    code, out, err = kaon("run", str(flow), "-p", "n=[x]", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["type"] == "ParameterError" and error["exit_code"] == 2
    assert error["problems"][0]["field"] == "params.n" and "'[x]'" in error["message"]
    assert error["message"] in err
    code, out, _ = kaon("show", "nope", "--json")
    assert code == 2 and "no Kaon store at" in json.loads(out)["error"]["message"]


def test_an_unreachable_store_is_one_line(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """README: exit 3 is printed as ``Kaon failed: TYPE: cause``, and every message is on one
    line. An unreachable PostgreSQL printed the driver's message over several lines, then
    SQLAlchemy's ``(Background on this error at: https://sqlalche.me/...)`` on its own."""
    import socket

    with socket.socket() as closed:  # bound, never listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        code, _, err = kaon("runs", "--db", f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x")
    assert code == 3, err
    assert err.startswith("error: Kaon failed: StoreUnavailableError: "), err
    assert "refused" in err and "secret" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "sqlalche.me" not in err, err
