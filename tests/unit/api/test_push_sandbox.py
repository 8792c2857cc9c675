"""Pushed code is evaluated after authorization, in a sandboxed child, never in the API's
process; a refused or failed push leaves nothing under ``sources/``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.service.push_sandbox import SandboxLimits, declared_names

FLOW = """
import kaon

{prelude}

@kaon.step
def a() -> int:
    return 1

@kaon.workflow
def {name}() -> None:
    a()
"""


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def push(client: Any, secret: str, source: str, **extra: Any) -> Any:
    body = {"source": source, "file_name": "flow.py", **extra}
    return client.post("/workflows", json=body, headers=h(secret))


def flow(name: str = "hello", prelude: str = "") -> str:
    return FLOW.format(name=name, prelude=prelude)


def sources(services: Services) -> list[str]:
    folder = services.registry.sources_dir
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_exit_and_keyboard_interrupt_in_a_pushed_file_are_a_clean_422(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    for prelude, said in (
        ("import os; os._exit(7)", "exited with code 7"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise SystemExit(3)", "SystemExit"),
    ):
        answer = push(client, tokens["owner"], flow(prelude=prelude))
        assert answer.status_code == 422, answer.text
        assert said in answer.text
        assert sources(services) == []
    assert client.get("/healthz").status_code == 200
    assert push(client, tokens["owner"], flow()).status_code == 200


def test_a_refused_push_runs_no_code_and_leaves_nothing(
    client: Any, tokens: dict[str, str], services: Services, tmp_path: Path
) -> None:
    assert push(client, tokens["owner"], flow()).status_code == 200
    kept = sources(services)
    marker = tmp_path / "ran"
    evil = flow(prelude=f"open({str(marker)!r}, 'w').write('x')")
    for extra in ({}, {"workflow": "hello"}):
        answer = push(client, tokens["stranger"], evil, **extra)
        assert answer.status_code == 403, answer.text
    assert push(client, tokens["operator"], evil).status_code == 403
    assert not marker.exists()
    assert sources(services) == kept


def test_a_computed_name_is_checked_after_a_sandboxed_evaluation(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    assert push(client, tokens["owner"], flow()).status_code == 200
    kept = sources(services)
    dynamic = flow(name="anything").replace(
        "@kaon.workflow\n", "@kaon.workflow(name='hel' + 'lo')\n"
    )
    assert declared_names(dynamic, "flow.py") is None
    assert push(client, tokens["stranger"], dynamic).status_code == 403
    assert sources(services) == kept


def test_the_evaluation_sees_none_of_the_servers_environment(
    client: Any, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAON_TEST_SECRET", "s3cret")
    spy = "import os\nraise RuntimeError(repr(os.environ.get('KAON_TEST_SECRET')))"
    answer = push(client, tokens["owner"], flow(prelude=spy))
    assert answer.status_code == 422
    assert "s3cret" not in answer.text and "None" in answer.text


def test_time_and_memory_are_bounded(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    services.registry.sandbox = SandboxLimits(timeout_s=3, memory_bytes=512 * 1024 * 1024)
    looping = push(client, tokens["owner"], flow(prelude="while True: pass"))
    assert looping.status_code == 422 and "longer than 3s" in looping.text
    hungry = push(client, tokens["owner"], flow(prelude="x = bytearray(2 * 1024 ** 3)"))
    assert hungry.status_code == 422 and "MemoryError" in hungry.text
    assert sources(services) == []


def test_messages_name_no_server_path_and_bundle_names_are_exact(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    home = str(services.registry.sources_dir.parent)
    broken = push(client, tokens["owner"], flow(prelude="import no_such_module_here"))
    assert broken.status_code == 422
    assert home not in broken.text and "sources" not in broken.text
    newline = push(client, tokens["owner"], flow(), files={"x.py\n": "y = 1"})
    assert newline.status_code == 422, newline.text
    assert sources(services) == []


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="make test installs bubblewrap")
def test_a_pushed_files_code_cannot_reach_the_servers_home_or_process(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Its top-level code runs at push, in the step sandbox: the server's home (state
    database, run-token key) is an empty folder and the server's process is not visible, so
    it cannot read secrets nor mint an admin token (it could, before)."""
    home = str(Path(services.settings.home).absolute())
    prelude = f"""
import os
import shutil
_seen = [p for p in ("kaon.db", "run-token.key") if os.path.exists(os.path.join({home!r}, p))]
_parent = os.path.exists(f"/proc/{{os.getppid()}}/environ") and os.getppid() > 1
_verdict = "sees_" + "_".join(n.split(".")[0].replace("-", "_") for n in _seen) if _seen else ""
"""
    source = flow(name="probe", prelude=prelude).replace(
        "@kaon.workflow\n", "@kaon.workflow(name=_verdict or ('parent' if _parent else 'blind'))\n"
    )
    answer = push(client, tokens["owner"], source)
    assert answer.status_code < 300, answer.text
    assert answer.json()["workflow"] == "blind"


def test_pushed_code_is_kept_in_a_private_folder(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Other local users of the server's machine read no pushed code (the sources folder is
    created 0700, whatever the umask)."""
    import stat

    old = os.umask(0o022)
    try:
        assert push(client, tokens["owner"], flow()).status_code < 300
    finally:
        os.umask(old)
    mode = stat.S_IMODE(services.registry.sources_dir.stat().st_mode)
    assert mode == 0o700, oct(mode)


def test_a_scrubbed_message_names_the_pushed_file_for_any_hash_seed() -> None:
    """The server's paths were replaced in a set's order: under some hash seeds the bare
    folder went first and the message said `<bundle>/qseq.py:NAME`."""
    import os
    import subprocess
    import sys

    check = (
        "from kaon.service.push_sandbox import _scrub\n"
        "folder = '/srv/kaon/push-scratch/bundle'\n"
        "print(_scrub(folder + '/qseq.py: pick one with ' + folder + '/qseq.py:NAME', "
        "folder, 'qseq.py'))\n"
    )
    seen = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run(
            [sys.executable, "-c", check], capture_output=True, text=True, env=env, check=True
        )
        seen.add(done.stdout.strip())
    assert seen == {"qseq.py: pick one with qseq.py:NAME"}


def test_a_yaml_push_nested_too_deep_is_refused_cleanly_without_building_it(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """The names a YAML push declares are read in the API's process before the sandboxed
    evaluation: a document built there to read its ``name`` recursed as deep as the file
    nests (a 500 naming a RecursionError). Now the parser's events are read, not a document."""
    nested = "name: deep\nv: " + "[" * 900 + "]" * 900 + "\n"
    assert declared_names(nested, "x.yaml") == {"deep"}
    deep = "name: deep\nv: " + "[" * 50_000 + "]" * 50_000 + "\n"
    assert declared_names(deep, "x.yaml") in (None, {"deep"})  # libyaml stops at 1,000 levels
    answer = client.post(
        "/workflows", json={"source": deep, "file_name": "x.yaml"}, headers=h(tokens["owner"])
    )
    assert answer.status_code == 422, answer.text
    assert sources(services) == []
    last = "name: first\nsteps: [{id: a, shell: echo}]\nname: second\n"
    assert declared_names(last, "x.yaml") == {"second"}  # as a YAML load reads it: the last
    for unknown in ("name: 12\n", "name: [a]\n", "- name: x\n", "a: &n x\nname: *n\n", "{"):
        assert declared_names(unknown, "x.yaml") is None, unknown
    assert declared_names("name: x\n---\nname: y\n", "x.yaml") is None
    assert declared_names("steps: []\nname: 'quoted'\n", "x.yml") == {"quoted"}
