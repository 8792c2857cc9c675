"""The HTTP API on SQLite and on PostgreSQL: what one database stores and the other refuses
(a NUL character, a number past PostgreSQL's INTEGER) is a 4xx on both, never a 5xx, and what
a step says is recorded on both, never a reason to quarantine its run."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kaon
from kaon.store import open_store

HELLO = (
    "name: hello\nparams:\n  day: {type: str, default: x}\nsteps:\n  - id: a\n    shell: echo hi\n"
)
NUL = "a\x00b"
TOO_BIG = 2**31  # one past the largest INTEGER

NUL_STEPS = """
import kaon


@kaon.step
def say(mode: str) -> str:
    if mode == "print":
        print("before\\x00after")
    if mode == "metric":
        kaon.context().metric("m\\x00x", 1.0)
    if mode == "raise":
        raise ValueError("bad\\x00value")
    if mode == "signal":
        kaon.context().emit_signal("zz", v="a\\x00b")
    if mode == "return":
        return "a\\x00b"
    return "ok"


@kaon.workflow
def nul_flow(mode: str = "print") -> None:
    say(mode)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """None (the home's SQLite store) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def api(tmp_path: Path, db_url: str | None) -> Iterator[tuple[Any, dict[str, str]]]:
    """An in-process API over ``db_url``, hello pushed, and an admin's headers."""
    from kaon.api.app import build_services, create_app
    from kaon.service.settings import Settings

    settings = Settings.from_env(home=str(tmp_path / "home"), db_url=db_url, executor="inline")
    services = build_services(settings)
    admin = {"Authorization": f"Bearer {services.auth.create_token('admin', 'admin', [])[1]}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            body = {"source": HELLO, "file_name": "hello.yaml"}
            pushed = client.post("/workflows", json=body, headers=admin)
            assert pushed.status_code in (200, 201), pushed.text
            yield client, admin
    finally:
        services.runs.close()


NUL_REQUESTS = [  # (method, path, body, status): a name with a NUL names nothing
    ("GET", "/runs/a%00b", None, 404),
    ("POST", "/runs/a%00b/kill", None, 404),
    ("GET", "/runs?workflow=a%00b", None, 200),  # an empty list
    ("GET", "/workflows/a%00b/runs", None, 200),  # as for any unknown name
    ("GET", "/signals?name=a%00b", None, 200),
    ("POST", "/runs", {"workflow": "hello", "params": {"day": NUL}}, 422),
    ("POST", "/runs", {"workflow": "hello", "labels": {"x": NUL}}, 422),
    ("POST", "/runs", {"workflow": NUL}, 422),
    ("POST", "/signals", {"name": "go", "params": {"day": NUL}}, 422),
    ("POST", "/signals", {"name": "go", "dedupe_key": NUL}, 422),
    ("PATCH", "/workflows/hello", {"properties": {"k": NUL}}, 422),
    ("POST", "/tokens", {"name": NUL, "role": "viewer"}, 422),
]

BIG_VERSIONS = [
    ("POST", "/workflows/hello/activate", {"version": TOO_BIG}, 422),
    ("POST", "/runs", {"workflow": "hello", "version": TOO_BIG}, 422),
    ("GET", f"/workflows/hello/params?version={TOO_BIG}", None, 422),
    ("GET", f"/workflows/hello/diff?old=1&new={TOO_BIG}", None, 422),
    ("GET", f"/workflows/hello/versions/{TOO_BIG}", None, 422),
]


LONG_ID = "x" * 60_000  # SQLite's LIKE takes patterns of at most 50,000 bytes
LONG_IDS = [  # a run id (or a prefix of one) longer than any run's names none
    ("GET", f"/runs/{LONG_ID}", None, 404),
    ("GET", f"/runs/{'_' * 30_000}/summary", None, 404),  # escaped: twice as long
    ("POST", f"/runs/{LONG_ID}/kill", None, 404),
    ("GET", f"/plot?metric=m&run={LONG_ID}", None, 404),
]


def test_input_neither_database_can_hold_is_answered_not_a_server_error(
    api: tuple[Any, dict[str, str]],
) -> None:
    """A NUL (PostgreSQL's text and jsonb cannot hold one) anywhere in a request, or a
    version past PostgreSQL's INTEGER, answered 500 with the driver's error and SQL. A value
    to store is refused (422); a name or filter holding one matches nothing, as on SQLite.
    A run id of 60,000 characters was a 500 on SQLite ("LIKE or GLOB pattern too complex")."""
    client, admin = api
    started = client.post("/runs", json={"workflow": "hello"}, headers=admin)
    assert started.status_code == 201, started.text  # a prefix is compared with a run's id
    for method, path, body, status in NUL_REQUESTS + BIG_VERSIONS + LONG_IDS:
        answer = client.request(method, path, json=body, headers=admin)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("print", "succeeded"),
        ("metric", "succeeded"),
        ("return", "succeeded"),
        ("raise", "failed"),
        ("signal", "succeeded"),
    ],
)
def test_a_nul_said_by_a_step_is_recorded_not_a_quarantine(
    pg_url: str, tmp_path: Path, mode: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a NUL in a step's log line, metric name, error, returned string or
    signal failed the turn's write: the run was quarantined and its step's outcome lost."""
    (tmp_path / "nul_steps.py").write_text(NUL_STEPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from nul_steps import nul_flow  # type: ignore[import-not-found]

    handle = kaon.start(nul_flow, db=pg_url, home=str(tmp_path / "home"), mode=mode)
    status = handle.wait(timeout=60)
    store = open_store(pg_url)
    try:
        error = store.get_run(handle.id).error or ""
        if mode == "raise":
            step_error = store.get_step_run(handle.id, "say").error or {}
            assert step_error.get("message") == "bad\ufffdvalue"  # the step's own error
        if mode == "return":
            assert handle.output("say") == NUL  # a blob keeps it exactly
    finally:
        store.close()
    assert (status, "quarantined" in error) == (expected, False), error
