"""README: "user error types show by their file's module (`pipeline.Flaky`)". The recorded
error type does, but the traceback's last line named the synthetic module the file is loaded
under (`kaon_user_<hash>.Flaky: ...`), a name the user never wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app

FLOW = """\
import kaon


class Flaky(ConnectionError):
    pass


@kaon.step
def boom() -> int:
    try:
        raise KeyError("inner")
    except KeyError as exc:
        raise Flaky("outer") from exc


@kaon.workflow
def w():
    boom()
"""


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_traceback_names_the_users_module_not_the_synthetic_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", executor)
    monkeypatch.delenv("KAON_URL", raising=False)
    (tmp_path / "pipeline.py").write_text(FLOW)
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(tmp_path / "pipeline.py"), "--json"])
    assert result.exit_code == 1, result.stderr
    detail = json.loads(result.stdout)
    error = next(s for s in detail["steps"] if s["step_id"] == "boom")["error"]
    assert error["type"] == "pipeline.Flaky"
    assert "pipeline.Flaky: outer" in error["traceback"]
    assert "kaon_user_" not in error["traceback"], error["traceback"]
