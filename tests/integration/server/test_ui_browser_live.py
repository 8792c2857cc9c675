"""UI defects found by a browser walk-through (Chromium via Playwright, as test_ui_browser.py).

Each test names the defect it pins; see the report for root causes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.integration


# A step that talks for ~12 s and reports progress each line pair (the panel redraws).
CHATTY = """\
name: chatty
steps:
  - id: talk
    shell: >-
      for i in $(seq 1 60); do echo "line $i apple"; echo "line $i pear";
      echo "::kaon::progress $i/60 steps"; sleep 0.2; done
"""

# One long step: no event between its start and its end.
QUIET = """\
name: quiet
steps:
  - id: nap
    shell: sleep 8
"""

FAN = """\
name: fan150
steps:
  - id: numbers
    shell: echo ::kaon::output items=[$(seq -s, 0 149)]
  - id: each
    foreach: "${{ steps.numbers.items }}"
    steps:
      - id: square
        shell: echo $KAON_INDEX
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, launch_shared: Any) -> Iterator[Any]:
    running = launch_shared(tmp_path_factory.mktemp("probe-ui") / "home")
    admin = running.client()
    for source in (CHATTY, QUIET, FAN):
        assert (
            admin.post("/workflows", json={"source": source, "file_name": "f.yaml"}).status_code
            < 300
        )
    for name, group in (("grp", "g"), ("other", "h")):
        made = admin.post("/tokens", json={"name": name, "role": "operator", "groups": [group]})
        running.__dict__[name] = made.json()["token"]
    assert admin.patch("/workflows/quiet", json={"owner_group": "g"}).status_code == 200
    try:
        yield running
    finally:
        running.stop()


def page_as(browser: Any, server: Any, token: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server.url}/ui")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui")
    return page


def start(server: Any, workflow: str) -> str:
    answer = server.client().post("/runs", json={"workflow": workflow, "params": {}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_status(server: Any, run_id: str, wanted: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.client().get(f"/runs/{run_id}/summary").json()["status"] in wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {wanted}")


def test_log_search_survives_a_panel_redraw(browser: Any, server: Any) -> None:
    """Searching the log of a running step that reports progress: the panel redraws on each
    progress event, which emptied the search box and appended unfiltered lines."""
    run_id = start(server, "chatty")
    page = page_as(browser, server, server.token)
    page.goto(f"{server.url}/ui/runs/{run_id}?step=talk")
    page.wait_for_selector("#panel .logs div")
    page.fill("#panel .log-search", "apple")
    page.dispatch_event("#panel .log-search", "change")
    page.wait_for_timeout(3000)  # several progress events, several redraws
    assert page.input_value("#panel .log-search") == "apple"
    lines = page.inner_text("#panel .logs").split("\n")
    assert lines and all("apple" in line for line in lines), lines[-6:]
    page.context.close()
    server.client().post(f"/runs/{run_id}/kill", json={})


def test_running_duration_ticks_without_events(browser: Any, server: Any) -> None:
    """A run whose one step runs for seconds sends no event meanwhile: its duration froze at
    the value of the last read."""
    run_id = start(server, "quiet")
    wait_status(server, run_id, {"running"})
    page = page_as(browser, server, server.token)
    page.goto(f"{server.url}/ui/runs/{run_id}")
    page.wait_for_selector("#live.on")
    first = page.text_content("#run-facts [data-fact=duration]")
    page.wait_for_timeout(3000)
    later = page.text_content("#run-facts [data-fact=duration]")
    assert later != first, (first, later)
    page.context.close()


def test_go_to_past_the_last_item_shows_the_last_page(browser: Any, server: Any) -> None:
    """'go to 5000' in a table of 150 items showed '4,901-150 of 150' (en dash) and no row."""
    run_id = start(server, "fan150")
    wait_status(server, run_id, {"succeeded"})
    page = page_as(browser, server, server.token)
    page.goto(f"{server.url}/ui/runs/{run_id}")
    page.wait_for_selector("#item-table tbody tr")
    page.fill("#item-pager input", "5000")
    page.dispatch_event("#item-pager input", "change")
    page.wait_for_selector("#item-table tbody tr[data-path='each[149]']")
    assert page.text_content("#item-pager [data-total]") == "101\u2013150 of 150"
    page.context.close()


def test_refused_activity_is_not_shown_as_empty(browser: Any, server: Any) -> None:
    """A token of another group opening a workflow page: the activity read is refused (403),
    and the page said 'No actions yet.' (the workflow has a push and a change)."""
    page = page_as(browser, server, server.other)
    page.goto(f"{server.url}/ui/workflows/quiet")
    page.wait_for_selector("#versions tbody tr")
    page.wait_for_timeout(1000)
    text = page.inner_text("#wf-audit tbody")
    assert "No actions yet." not in text, text
    page.context.close()


def test_a_revoked_session_leaves_the_live_stream_for_the_login_page(
    browser: Any, server: Any
) -> None:
    """The run page's event stream, reconnecting after its session was revoked, got 401s
    and showed "reconnecting…" for ever; it now notices and goes to the login page. The
    stream is made to drop (its requests fail) until the token is revoked."""
    admin = server.client()
    made = admin.post("/tokens", json={"name": "leaving", "role": "viewer", "groups": []}).json()
    run_id = start(server, "quiet")
    page = page_as(browser, server, made["token"])
    revoked = threading.Event()
    page.route(
        "**/events?*", lambda route: route.continue_() if revoked.is_set() else route.abort()
    )
    page.goto(f"{server.url}/ui/runs/{run_id}")
    page.wait_for_function("document.querySelector('#live').textContent === 'reconnecting…'")
    assert admin.delete(f"/tokens/{made['id']}").status_code == 204
    revoked.set()
    page.wait_for_url("**/ui/login?next=*", timeout=20_000)
    assert f"/ui/runs/{run_id}" in page.url.replace("%2F", "/")
    page.context.close()
    server.client().post(f"/runs/{run_id}/kill", json={})
