"""Project configuration: found by walking up as git does, profiles, and each setting's source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.errors import ConfigurationError
from kaon.service.client import server_url
from kaon.service.project import choose_profile, find_project, resolve
from kaon.service.remote import RemoteService
from kaon.service.settings import Settings

KAON_TOML = """
executor = "inline"
workers = 3

[profiles.prod]
db = "postgresql+psycopg://kaon@db/kaon"
artifacts = "s3://ml-artifacts/kaon"
url = "https://kaon.example.com"
token_env = "KAON_PROD_TOKEN"

[profiles.scratch]
home = "scratch-state"
"""


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "KAON_HOME", "KAON_DB", "KAON_ARTIFACTS", "KAON_EXECUTOR", "KAON_WORKERS",
        "KAON_URL", "KAON_TOKEN", "KAON_PROFILE", "KAON_SANDBOX",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    yield
    choose_profile(None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "flows" / "deep").mkdir(parents=True)
    (root / "kaon.toml").write_text(KAON_TOML)
    monkeypatch.chdir(root / "flows" / "deep")
    return root


def test_found_by_walking_up_and_state_lives_at_the_root(project: Path) -> None:
    found = find_project()
    assert found is not None and found.root == project and found.file.name == "kaon.toml"
    settings = Settings.from_env()
    assert settings.home == project / ".kaon"
    assert settings.store_url.endswith(f"{project}/.kaon/kaon.db")
    assert (settings.executor, settings.workers) == ("inline", 3)


def test_pyproject_tool_kaon_and_a_pyproject_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    (outer / "pyproject.toml").write_text('[tool.kaon]\nhome = "state"\n')
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.kaon]: skipped
    monkeypatch.chdir(inner)
    assert Settings.from_env().home == outer / "state"
    assert resolve()["home"].source == f"{outer / 'pyproject.toml'} [tool.kaon]"


def test_outside_a_project_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_project() is None
    assert Settings.from_env().home == Path(".kaon")


def test_profiles_select_store_artifacts_server_and_token(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAON_PROD_TOKEN", "s3cret")
    assert server_url() is None
    choose_profile("prod")
    settings = Settings.from_env()
    assert settings.db_url == "postgresql+psycopg://kaon@db/kaon"
    assert settings.artifact_url == "s3://ml-artifacts/kaon"
    assert settings.executor == "inline"  # the top level still applies
    assert server_url() == "https://kaon.example.com"
    remote = RemoteService("https://kaon.example.com")  # the token goes to its own server
    assert remote.http.headers["Authorization"] == "Bearer s3cret"
    remote.http.close()
    sources = {name: r.source for name, r in resolve().items()}
    assert sources["db"].endswith("kaon.toml [profiles.prod]")
    assert sources["token"].endswith("token_env=KAON_PROD_TOKEN")
    choose_profile(None)
    monkeypatch.setenv("KAON_PROFILE", "scratch")
    assert Settings.from_env().home == project / "scratch-state"


def test_options_beat_variables_beat_profiles(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    choose_profile("prod")
    monkeypatch.setenv("KAON_DB", "sqlite:///env.db")
    assert Settings.from_env().db_url == "sqlite:///env.db"
    assert Settings.from_env(db_url="sqlite:///opt.db").db_url == "sqlite:///opt.db"
    assert resolve({"db": "sqlite:///opt.db"})["db"].source == "--db"
    assert resolve()["db"].source == "KAON_DB"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("executor = 'mesos'\n", "unknown executor 'mesos'"),
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("workers = 'many'\n", "workers must be an int"),
        ("workers = 0\n", "workers must be between 1 and 4096, got 0"),
        ("sandbox = 'maybe'\n", "unknown sandbox mode 'maybe'; choose one of auto, on, off"),
        ("[profiles.x]\ndb = 3\n", "[profiles.x] db must be a str"),
        ("this is not toml", "cannot read the project configuration"),
    ],
)
def test_a_bad_file_is_a_configuration_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    (tmp_path / "kaon.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"kaon\.toml") as info:
        Settings.from_env()
    assert message in str(info.value)


def test_a_bad_value_of_a_profile_names_the_profile_not_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's ``workers = 0`` was reported as ``KAON_WORKERS must be between ...``, and its
    ``sandbox = "maybe"`` as ``--sandbox / KAON_SANDBOX: ...`` (and only when a run started):
    the user looked for a variable that was not set."""
    (tmp_path / "kaon.toml").write_text('[profiles.p]\nworkers = 0\nsandbox = "maybe"\n')
    monkeypatch.chdir(tmp_path)
    choose_profile("p")
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env()
    assert str(info.value).startswith(f"{tmp_path / 'kaon.toml'} [profiles.p]: workers"), info
    assert "KAON_WORKERS" not in str(info.value)
    (tmp_path / "kaon.toml").write_text('[profiles.p]\nsandbox = "maybe"\n')
    with pytest.raises(ConfigurationError, match=r"kaon\.toml \[profiles\.p\]: unknown sandbox"):
        Settings.from_env()
    monkeypatch.setenv("KAON_SANDBOX", "Off")  # a variable still wins, and names itself
    assert Settings.from_env().sandbox == "off"
    monkeypatch.setenv("KAON_SANDBOX", "never")
    with pytest.raises(ConfigurationError, match=r"^KAON_SANDBOX: unknown sandbox mode 'never'"):
        Settings.from_env()
    assert Settings.from_env(sandbox="on").sandbox == "on"


def test_an_unknown_profile_is_an_error(project: Path) -> None:
    choose_profile("staging")
    with pytest.raises(ConfigurationError, match="--profile: unknown profile 'staging'"):
        Settings.from_env()


def test_a_refused_token_names_the_variable_the_profile_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `token_env = "KAON_PROD_TOKEN"` unset, the server's 401 said `(set KAON_TOKEN)`."""
    import httpx

    from kaon.errors import AuthenticationError
    from kaon.service.remote import raise_for_answer

    (tmp_path / "kaon.toml").write_text(KAON_TOML)
    monkeypatch.chdir(tmp_path)
    refused = httpx.Response(
        401,
        json={"error": "AuthenticationError", "message": "missing API token"},
        request=httpx.Request("GET", "https://kaon.example.com/runs"),
    )
    with pytest.raises(AuthenticationError, match=r"\(set KAON_TOKEN\)"):
        raise_for_answer(refused)
    choose_profile("prod")
    with pytest.raises(AuthenticationError) as caught:
        raise_for_answer(refused)
    assert "set KAON_PROD_TOKEN" in str(caught.value) and "token_env" in str(caught.value)
    monkeypatch.setenv("KAON_TOKEN", "kaon_x")  # read first: the token that was refused
    with pytest.raises(AuthenticationError, match=r"\(set KAON_TOKEN\)"):
        raise_for_answer(refused)


def test_a_profiles_token_is_never_sent_to_another_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--url http://elsewhere --profile prod` sent prod's token to whatever server the URL
    named: now refused, naming the server the token is for."""
    from kaon.errors import ConfigurationError
    from kaon.service.remote import RemoteService

    (tmp_path / "kaon.toml").write_text(KAON_TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAON_PROD_TOKEN", "kaon_prod_secret")
    choose_profile("prod")
    with pytest.raises(ConfigurationError, match=r"is for https://kaon\.example\.com, not"):
        RemoteService("http://127.0.0.1:9")
    same = RemoteService("https://kaon.example.com/")  # the profile's own server
    assert same.http.headers["Authorization"] == "Bearer kaon_prod_secret"
    monkeypatch.setenv("KAON_TOKEN", "kaon_other")  # a token given for this server is sent
    other = RemoteService("http://127.0.0.1:9")
    assert other.http.headers["Authorization"] == "Bearer kaon_other"
