"""The step sandbox spec: what a sandboxed worker sees (bubblewrap arguments, environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kaon.executors.sandbox import SandboxSpec
from kaon.service.sandboxing import step_sandbox
from kaon.service.settings import Settings

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def test_environment_is_scrubbed() -> None:
    spec = SandboxSpec(pass_env=("PATH", "LANG"), env={"EXTRA": "1"})
    env = spec.environment({"PATH": "/bin", "LANG": "C", "AWS_SECRET_ACCESS_KEY": "s"})
    assert env == {
        "PATH": "/bin",
        "LANG": "C",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "KAON_SANDBOXED": "1",
        "EXTRA": "1",
    }


def test_visibility(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "sources").mkdir(parents=True)
    spec = SandboxSpec(hidden=(str(home),), read_only=(str(home / "sources"),))
    assert not spec.visible(str(home / "kaon.db"))
    assert spec.visible(str(home / "sources" / "abc" / "flow.py"))
    assert spec.visible(os.path.dirname(sys.executable))
    assert not spec.visible("/tmp/anything")  # a private /tmp per worker


def test_server_and_run_defaults(tmp_path: Path) -> None:
    local = Settings.from_env(home=str(tmp_path / "h"), executor="process")
    assert step_sandbox(local, default="off") is None
    inline = Settings.from_env(home=str(tmp_path / "h"), executor="inline")
    assert step_sandbox(inline, default="auto") is None


@needs_bwrap
def test_a_sandboxed_command_sees_no_home_no_database_and_no_other_process(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="process")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "kaon.db").write_text("state")
    spec = step_sandbox(settings, default="auto")
    assert spec is not None
    script = (
        "import os, sys; home = sys.argv[1]; "
        "print(sorted(os.listdir(home)), os.path.exists(f'/proc/{sys.argv[2]}'), "
        "'SECRET_X' in os.environ, os.access(home + '/artifacts', os.W_OK), "
        "[l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])"
    )
    argv = spec.argv([sys.executable, "-c", script, str(tmp_path / "home"), str(os.getpid())])
    out = subprocess.run(
        argv, env={**os.environ, "SECRET_X": "1"}, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "['artifacts',",
        "'sources']",
        "False",
        "False",
        "True",
        "0000000000000000",  # no capabilities: the tmpfs over the home cannot be unmounted
    ]


def test_code_on_sys_path_is_bound_back_but_never_a_hidden_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "lib").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(home), str(home / "lib"), *sys.path])
    spec = SandboxSpec(hidden=(str(home),))
    assert spec.visible(str(home / "lib" / "mod.py"))  # code the server imports
    assert not spec.visible(str(home / "kaon.db"))  # `python -m kaon` started in the home


def test_the_deepest_rule_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's data folder that contains the Kaon home does not uncover the home."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("KAON_SANDBOX_READ", str(tmp_path))
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="process")
    spec = step_sandbox(settings, default="on") if shutil.which("bwrap") else None
    if spec is None:
        pytest.skip("needs bubblewrap")
    assert spec.visible(str(tmp_path / "data.csv"))
    assert not spec.visible(str(tmp_path / "home" / "kaon.db"))
    assert spec.visible(str(tmp_path / "home" / "sources" / "x" / "flow.py"))


@needs_bwrap
def test_a_local_run_sees_its_project_even_under_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`KAON_SANDBOX=on kaon run` in a project under /tmp (private in the sandbox) found no
    code: a bare FileNotFoundError for the step's own file. Its working folder is given back
    read-only; the Kaon home inside it stays hidden."""
    project = Path(tempfile.mkdtemp(prefix="kaon-project-", dir="/tmp"))
    try:
        (project / "mod.py").write_text("def f() -> int:\n    return 1\n")
        monkeypatch.chdir(project)
        settings = Settings.from_env(home=str(project / ".kaon"), executor="process")
        spec = step_sandbox(settings, default="on", hide_user_home=False)
        assert spec is not None
        assert spec.visible(str(project / "mod.py"))
        assert not spec.visible(str(project / ".kaon" / "kaon.db"))
        script = "import sys; print(open(sys.argv[1]).read().count('return'))"
        argv = spec.argv([sys.executable, "-c", script, str(project / "mod.py")])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert (out.returncode, out.stdout.strip()) == (0, "1"), out.stderr
        server = step_sandbox(settings, default="on")  # a server's workers: not its cwd
        assert server is not None and not server.visible(str(project / "mod.py"))
    finally:
        shutil.rmtree(project, ignore_errors=True)


@needs_bwrap
def test_a_sandboxed_step_opens_the_s3_store_with_the_servers_endpoint_and_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kaon's own S3 settings (not secrets) reach a sandboxed step, which opens the artifact
    store by its URL: the same endpoint and time limit as the engine, not AWS's defaults."""
    monkeypatch.setenv("KAON_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("KAON_S3_TIMEOUT_S", "4")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")  # a secret: only by KAON_SANDBOX_ENV
    monkeypatch.delenv("KAON_SANDBOX_ENV", raising=False)
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="process")
    (tmp_path / "home").mkdir()
    spec = step_sandbox(settings, default="auto")
    assert spec is not None
    script = (
        "from kaon.artifacts import fsspec_options; import os; "
        "o = fsspec_options('s3://bucket/prefix'); "
        "print(o.get('endpoint_url'), o['config_kwargs']['read_timeout'], "
        "'AWS_SECRET_ACCESS_KEY' in os.environ)"
    )
    argv = spec.argv([sys.executable, "-c", script])
    out = subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["http://127.0.0.1:9000", "4.0", "False"]
