"""The web UI's lists against a real ``kaon server`` in Chromium (as test_ui_browser.py): a
registry larger than one page of ``GET /workflows`` is listed whole, page by page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.api.app import build_services
from kaon.service.settings import Settings
from kaon.store.registry import VersionRecord

pytestmark = pytest.mark.integration


SOURCE = "name: w000\nsteps:\n  - id: one\n    shell: 'true'\n"
WORKFLOWS = 130  # more than the 100 of GET /workflows' default page


def _registry_of(home: Path, count: int) -> None:
    """``count`` workflows (w000, w001, ...) in the store at ``home``: one pushed, the others
    registered with its definition (a push evaluates its file: seconds each). The admin
    token made for it is the server's (``start_server`` reads ``root-token``)."""
    services = build_services(Settings.from_env(home=str(home), executor="inline"))
    try:
        secret = services.auth.create_token("root", "admin", [])[1]
        (home / "root-token").write_text(secret)
        admin = services.auth.authenticate(secret)
        pushed = services.registry.push(SOURCE, "w.yaml", admin)
        for number in range(1, count):
            record = VersionRecord(
                f"w{number:03d}", 0, pushed.definition_hash, SOURCE, "w.yaml", time.time(), "seed"
            )
            services.registry.registry.add_version(record, activate=True)
    finally:
        services.runs.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, launch_shared: Any) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("ui-lists") / "home"
    _registry_of(home, WORKFLOWS)
    running = launch_shared(home, "--executor", "inline")
    try:
        yield running
    finally:
        running.stop()


def _token(server: Any) -> str:
    answer = server.client().post(
        "/tokens", json={"name": "watcher", "role": "viewer", "groups": []}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def test_the_workflows_page_lists_every_workflow_page_by_page(browser: Any, server: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/ui")
    page.fill("input[name=token]", _token(server))
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui")
    page.wait_for_selector("#workflows tr[data-workflow=w000]")
    first = page.eval_on_selector_all("#workflows tbody tr", "rows => rows.length")
    assert first == 100
    assert page.query_selector("#workflows tr[data-workflow=w100]") is None
    # The page says that more follow, and the next one shows the rest (none was left out).
    page.click("#workflows-pager button:has-text('next')")
    page.wait_for_selector("#workflows tr[data-workflow=w129]")
    names = page.eval_on_selector_all(
        "#workflows tbody tr", "rows => rows.map((r) => r.dataset.workflow)"
    )
    assert names == [f"w{n:03d}" for n in range(100, WORKFLOWS)]
    assert page.text_content("#workflows-pager span") == "101\u2013130 of 130"
    assert page.is_disabled("#workflows-pager button:has-text('next')")
    page.click("#workflows-pager button:has-text('prev')")
    page.wait_for_selector("#workflows tr[data-workflow=w000]")
    assert errors == []
    context.close()
