"""``kaon`` in a project: the state folder at the project's root whatever the current folder,
``--profile``, ``kaon config show``, and read commands that never create a store."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app
from kaon.service.project import choose_profile

FLOWS = Path(__file__).with_name("cli_flows.py")
Kaon = Callable[..., tuple[int, str, str]]


@pytest.fixture
def kaon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kaon]:
    for name in ("KAON_HOME", "KAON_DB", "KAON_ARTIFACTS", "KAON_URL", "KAON_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    yield invoke
    choose_profile(None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "flows").mkdir(parents=True)
    (root / "notebooks").mkdir()
    shutil.copy(FLOWS, root / "flows" / "cli_flows.py")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "proj"\n\n[tool.kaon]\n\n[tool.kaon.profiles.other]\nhome = "other"\n'
    )
    return root


def test_runs_are_found_from_any_folder_of_the_project(
    kaon: Kaon, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "flows")
    code, _, err = kaon("run", "cli_flows.py:squares", "-p", "n=3")
    assert code == 0, err
    assert (project / ".kaon").is_dir() and not (project / "flows" / ".kaon").exists()
    monkeypatch.chdir(project / "notebooks")
    code, out, _ = kaon("runs", "--json")
    assert code == 0 and [(r["workflow"], r["status"]) for r in json.loads(out)] == [
        ("squares", "succeeded")
    ]
    # another profile, another state folder: nothing there, and reading creates nothing
    code, _, err = kaon("--profile", "other", "runs")
    assert code == 2 and "no Kaon store" in err
    assert not (project / "other").exists()


def test_config_show_prints_values_and_sources(
    kaon: Kaon, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "notebooks")
    code, out, _ = kaon("config", "show")
    assert code == 0
    assert f"project: {project / 'pyproject.toml'} [tool.kaon] (root {project})" in out
    assert f"home       {project / '.kaon'}  [default (the root of" in out
    assert "executor   inline  [KAON_EXECUTOR]" in out
    monkeypatch.setenv("KAON_PROFILE", "other")
    code, out, _ = kaon("config", "show", "--json")
    document = json.loads(out)
    assert (document["profile"], document["profile_source"]) == ("other", "KAON_PROFILE")
    home = next(s for s in document["settings"] if s["name"] == "home")
    assert home["value"] == str(project / "other")
    assert home["source"].endswith("[tool.kaon] [profiles.other]")
    code, _, err = kaon("--profile", "nope", "config", "show")
    assert code == 2 and "unknown profile 'nope'" in err


def test_read_commands_never_create_a_store(
    kaon: Kaon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (("runs",), ("show", "r-1"), ("logs", "r-1", "a"), ("versions", "w")):
        code, _, err = kaon(*args)
        assert code == 2 and "no Kaon store" in err, (args, err)
    assert list(tmp_path.iterdir()) == []
