"""The attack suite for step code: a step never holds the control plane's keys.

A real ``kaon server`` (sandboxed by default when bubblewrap is installed) runs an owner's
workflow whose Python and shell steps try what a hostile step would: read the state
database, the server's environment (a secret variable) and ``/proc/<server pid>/environ``, and
mint an admin token with ``kaon token create --home <server home>``. All must fail, while the
steps themselves still run: they import their bundle's modules and write to the artifact store.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]

SECRET = "kaon-test-secret-value-7f3a"

FLOW = """
import os
import sys

import kaon
import probes


@kaon.step
def probe(home: str, server_pid: int) -> dict:
    found = {"database": probes.read(os.path.join(home, "kaon.db"))}
    found["home"] = sorted(os.listdir(home)) if os.path.isdir(home) else None
    found["secret"] = os.environ.get("KAON_TEST_SECRET")
    found["server_proc"] = os.path.exists(f"/proc/{server_pid}/environ")
    found["server_environ"] = probes.read(f"/proc/{server_pid}/environ")
    return found


@kaon.step
def api_probe(other_run: str) -> dict:
    import httpx

    env = kaon.context().extra["env"]
    own = kaon.context().run_id
    client = httpx.Client(
        base_url=env["KAON_URL"], headers={"Authorization": "Bearer " + env["KAON_RUN_TOKEN"]}
    )
    with client:
        return {
            "own_run": client.get(f"/runs/{own}").status_code,
            "other_run": client.get(f"/runs/{other_run}").status_code,
            "tokens": client.get("/tokens").status_code,
            "mint": client.post("/tokens", json={"name": "x", "role": "admin"}).status_code,
            "runs": client.get("/runs").status_code,
            "kill_other": client.post(f"/runs/{other_run}/kill").status_code,
        }


@kaon.step
def big() -> str:
    return "x" * 5000  # goes to the artifact store


@kaon.step
def size(text: str) -> int:
    return len(text)


@kaon.workflow
def hostile(home: str, server_pid: int, other_run: str = "") -> None:
    probe(home, server_pid)
    api_probe(other_run)
    size(big())
    kaon.shell(
        "cat \\"$KAON_INPUT_H/kaon.db\\" | head -c 16 | base64; echo; "
        "tr \\"\\\\0\\" \\"\\\\n\\" < /proc/$KAON_INPUT_P/environ | grep KAON_TEST_SECRET; "
        "echo secret=$KAON_TEST_SECRET; "
        "echo ::kaon::output minted=$(" + sys.executable + " -m kaon.cli.main token create "
        "minted_sh --role admin --group \\"*\\" --home \\"$KAON_INPUT_H\\" "
        "2>/dev/null | tail -c 80); true",
        id="shell_probe",
        inputs={"h": home, "p": server_pid},
    )
"""

PROBES = """
def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(64).decode("latin-1")
    except OSError as exc:
        return None
"""


def test_steps_cannot_reach_the_control_planes_keys(tmp_path: Path, wait: Any, launch: Any) -> None:
    server = launch(tmp_path / "home", env={"KAON_TEST_SECRET": SECRET})
    try:
        _attack(server, wait)
    finally:
        assert server.stop() == 0, server.logs()


def _attack(server: Any, wait: Any) -> None:
    admin = server.client()
    source = FLOW
    pushed = admin.post(
        "/workflows",
        json={"source": source, "file_name": "flow.py", "files": {"probes.py": PROBES}},
    )
    assert pushed.status_code == 200, pushed.text
    params = {"home": str(server.home.absolute()), "server_pid": server.process.pid}
    other = admin.post("/runs", json={"workflow": "hostile", "params": params})
    wait(admin, other.json()["id"], {"succeeded", "failed"})
    params["other_run"] = other.json()["id"]
    started = admin.post("/runs", json={"workflow": "hostile", "params": params})
    assert started.status_code == 201, started.text
    detail = wait(admin, started.json()["id"], {"succeeded", "failed"})
    steps = {s["path"]: s for s in detail["steps"]}
    assert detail["status"] == "succeeded", (detail, server.logs())
    found = _value(admin, detail["id"], "probe")
    assert found["database"] is None and set(found["home"] or ()) <= {"artifacts", "sources"}, found
    assert found["secret"] is None
    assert not found["server_proc"] and found["server_environ"] is None
    assert _value(admin, detail["id"], "size") == 5000  # the artifact store works
    # The step's own run token reads its run, and nothing else.
    assert _value(admin, detail["id"], "api_probe") == {
        "own_run": 200,
        "other_run": 403,
        "tokens": 403,
        "mint": 403,
        "runs": 403,
        "kill_other": 403,
    }
    logs = admin.get(f"/runs/{detail['id']}/steps/shell_probe/logs").text
    assert SECRET not in logs and "U1FMaXRl" not in logs  # base64 of "SQLite"
    minted_sh = steps["shell_probe"]["outputs"].get("minted", {}).get("value", "")
    minted = str(minted_sh).rsplit(" ", 1)[-1]
    if minted:  # minted into an empty throwaway home: worthless on the server
        refused = server.client(minted).get("/tokens")
        assert refused.status_code == 401, (minted, refused.text)
    assert "minted_sh" not in [t["name"] for t in admin.get("/tokens").json()]


def _value(admin: Any, run_id: str, path: str) -> Any:
    detail = admin.get(f"/runs/{run_id}").json()
    outputs = next(s for s in detail["steps"] if s["path"] == path)["outputs"]
    if set(outputs) == {"return"}:
        return outputs["return"]["value"]
    return {name: output["value"] for name, output in outputs.items()}  # named outputs


CACHED_FLOW = """
import os

import kaon

try:  # top-level code: it runs wherever the module is imported
    _SEEN = sorted(os.listdir({home!r}))  # the database, the run-token key...
    with open(os.path.join({marks!r}, f"imported-{{os.getpid()}}"), "w") as _mark:
        _mark.write(" ".join(_SEEN))  # a sandboxed process sees an empty home, in a private /tmp
except OSError:
    pass


@kaon.step(cache=True)
def square(x: int) -> int:
    return x * x


@kaon.workflow
def cached(x: int = 3) -> None:
    square(x)
"""


def test_a_cached_steps_code_is_fingerprinted_outside_the_engine(
    tmp_path: Path, wait: Any, launch: Any
) -> None:
    """A cacheable step's cache key needs its code's fingerprint, which imports its module.
    The engine's process (unsandboxed: it holds the database and the run-token key) used to
    import the pushed module itself: the module's top-level code ran there, with the
    database and the key in reach. Now
    the fingerprint is made in a sandboxed child, and the cache still works."""
    marks = tmp_path / "marks"
    marks.mkdir()
    server = launch(tmp_path / "home")
    try:
        admin = server.client()
        home = str(server.home.absolute())
        source = CACHED_FLOW.format(home=home, marks=str(marks))
        pushed = admin.post("/workflows", json={"source": source, "file_name": "flow.py"})
        assert pushed.status_code == 200, pushed.text
        statuses = []
        for _ in range(2):
            started = admin.post("/runs", json={"workflow": "cached", "params": {"x": 4}})
            assert started.status_code == 201, started.text
            detail = wait(admin, started.json()["id"], {"succeeded", "failed"})
            assert detail["status"] == "succeeded", (detail, server.logs())
            statuses.append(next(s for s in detail["steps"] if s["path"] == "square")["status"])
        assert statuses == ["succeeded", "cached"]
        assert _value(admin, detail["id"], "square") == 16
        leaked = {p.name: p.read_text() for p in marks.iterdir()}
        assert leaked == {}, f"pushed code ran outside the sandbox, seeing the home: {leaked}"
    finally:
        assert server.stop() == 0, server.logs()
