"""The web UI in a real Chromium (Debian's, driven by Playwright) against a real ``kaon server``.

One server and one browser for the module (the suite stays lean): login, every page, the run
graph with counts, the live update of a run in progress, and actions allowed for an operator
and refused for a viewer. Screenshots of each page go to the test's tmp folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

FAN = """\
name: fan
params:
  n: {type: int, default: 30}
  pause: {type: str, default: "0"}
  gate: {type: str, default: ""}
steps:
  - id: numbers
    shell: >-
      while [ -n "$KAON_INPUT_GATE" ] && [ ! -f "$KAON_INPUT_GATE" ]; do sleep 0.1; done;
      echo ::kaon::output items=[$(seq -s, 0 $((KAON_INPUT_N - 1)))]
    inputs: {n: "${{ params.n }}", gate: "${{ params.gate }}"}
  - id: each
    foreach: "${{ steps.numbers.items }}"
    steps:
      - id: square
        shell: >-
          sleep $KAON_INPUT_PAUSE; echo item-$KAON_INDEX;
          echo ::kaon::metric loss=0.$KAON_INDEX
        inputs: {pause: "${{ params.pause }}"}
  - id: report
    needs: [each]
    shell: echo done
"""

SLOW = """\
name: slow
steps:
  - id: wait
    shell: sleep 60
"""

# A second version of fan: one default changes (the diff shows it).
FAN_V2 = FAN.replace("default: 30", "default: 12")

# Outputs the step panel previews: a table, an image, an HTML page; a step that reads the table
# (lineage both ways).
ARTIFACTS = """\
import base64
import pathlib
import tempfile

import kaon

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@kaon.step
def table(n: int):
    import pandas as pd

    return pd.DataFrame({"user": list(range(n)), "score": [i * 0.5 for i in range(n)]})


@kaon.step
def top(frame):
    return frame.nlargest(5, "score")


@kaon.step
def chart() -> pathlib.Path:
    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "chart.png").write_bytes(PNG)
    return folder / "chart.png"


@kaon.step
def report() -> pathlib.Path:
    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "report.html").write_text("<h1>Validation report</h1><p>stable</p>")
    return folder / "report.html"


@kaon.workflow
def outputs(n: int = 40):
    frame = table(n)
    top(frame)
    chart()
    report()
"""


ServerProcess = Any


@pytest.fixture(scope="module")
def kaon_server(
    tmp_path_factory: pytest.TempPathFactory, launch_shared: Any
) -> Iterator[ServerProcess]:
    running = launch_shared(tmp_path_factory.mktemp("ui") / "home", "--executor", "inline")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tokens(kaon_server: ServerProcess) -> dict[str, str]:
    admin = kaon_server.client()
    made = {"admin": kaon_server.token}
    for name, role in (("ops", "operator"), ("watcher", "viewer")):
        answer = admin.post("/tokens", json={"name": name, "role": role, "groups": []})
        made[role] = answer.json()["token"]
    for source in (FAN, SLOW):
        assert (
            admin.post("/workflows", json={"source": source, "file_name": "flow.yaml"}).status_code
            < 300
        )
    pushed = admin.post("/workflows", json={"source": ARTIFACTS, "file_name": "outputs.py"})
    assert pushed.status_code < 300, pushed.text
    return made


def shot(page: Any, tmp_path: Path, name: str, **options: Any) -> None:
    """A screenshot in the test's folder (and in $KAON_UI_SCREENSHOTS, for the README)."""
    page.screenshot(path=str(tmp_path / name), **options)
    keep = os.environ.get("KAON_UI_SCREENSHOTS")
    if keep:
        page.screenshot(path=str(Path(keep) / name), **options)


ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_page_errors() -> Iterator[None]:
    """Every test ends without a script error in any page."""
    ERRORS.clear()
    yield
    # Refusals (403, 409) and rejected input (422) are answers the tests ask for.
    asked = ("403", "409", "422")
    assert not [e for e in ERRORS if not any(code in e for code in asked)], ERRORS


def _offline(route: Any) -> None:
    """Every page works offline: a request leaving loopback is an error (and is refused)."""
    if route.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
        route.continue_()
    else:
        ERRORS.append(f"external request: {route.request.url}")
        route.abort()


def page_as(browser: Any, server: ServerProcess, token: str) -> Any:
    """A page in a fresh context, logged in through the login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda error: ERRORS.append(str(error)))
    page.on("console", lambda m: ERRORS.append(m.text) if m.type == "error" else None)
    context.route("**/*", _offline)
    page.goto(f"{server.url}/ui")
    assert "/ui/login" in page.url
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui")
    return page


def start(server: ServerProcess, workflow: str, **params: Any) -> str:
    answer = server.client().post("/runs", json={"workflow": workflow, "params": params})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_status(server: ServerProcess, run_id: str, wanted: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.client().get(f"/runs/{run_id}/summary").json()["status"] in wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {wanted}")


def test_login_refuses_a_bad_token(browser: Any, kaon_server: ServerProcess) -> None:
    page = browser.new_page()
    page.goto(f"{kaon_server.url}/")
    page.fill("input[name=token]", "kaon_wrong")
    page.click("button[type=submit]")
    assert "unknown API token" in page.text_content("[role=alert]")
    page.close()


def test_every_page_renders(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    first = start(kaon_server, "fan", n=30)
    wait_status(kaon_server, first, {"succeeded"})
    second = start(kaon_server, "fan", n=5)
    wait_status(kaon_server, second, {"succeeded"})
    page = page_as(browser, kaon_server, tokens["viewer"])
    page.wait_for_selector("#workflows tr[data-workflow=fan] .strip a")
    assert page.text_content(".who").startswith("watcher")
    page.screenshot(path=str(tmp_path / "workflows.png"))

    page.click("a[href='/ui/workflows/fan']")
    page.wait_for_selector("#versions tbody tr")
    page.wait_for_selector(f"#runs a[href='/ui/runs/{first}']")
    page.screenshot(path=str(tmp_path / "workflow.png"))

    page.goto(f"{kaon_server.url}/ui/runs/{first}")
    page.wait_for_selector("#graph[data-nodes='3'] canvas")
    assert page.text_content("#run-status") == "succeeded"
    assert page.text_content("#counts [data-count=succeeded]") == "succeeded 32"
    page.click("#timeline-box summary")
    page.wait_for_selector("#timeline rect[data-path=each]")
    # the foreach is one node whose items open as a paged table
    page.wait_for_selector("#item-table tbody tr[data-path='each[0]']")
    assert page.text_content("#item-pager [data-total]").endswith("of 30")
    page.select_option("#f-sort", "index")
    page.check("#f-desc")
    page.wait_for_selector("#item-table tbody tr:first-child[data-path='each[29]']")
    # A filter the server refuses says so and empties the table (it kept the old rows).
    page.evaluate("document.querySelector('#f-from').min = ''")
    page.fill("#f-from", "-5")
    page.dispatch_event("#f-from", "change")
    page.wait_for_selector("#banner.error:has-text('Filter refused')")
    assert page.query_selector("#item-table tbody tr") is None
    page.fill("#f-from", "0")
    page.dispatch_event("#f-from", "change")
    page.wait_for_selector("#item-table tbody tr:first-child[data-path='each[29]']")
    page.fill("#f-from", "")
    page.dispatch_event("#f-from", "change")
    page.fill("#f-text", "each[2")
    page.press("#f-text", "Enter")
    page.wait_for_function(
        "document.querySelector('#item-pager [data-total]').dataset.total === '11'"
    )
    page.click("#item-table tbody tr[data-path='each[2]']")
    page.wait_for_selector("#item-table tbody tr[data-path='each[2].square']")
    page.click("#item-table tbody tr[data-path='each[2].square']")
    page.wait_for_selector("#panel .logs div")
    assert page.text_content("#panel .logs") == "item-2"
    assert "loss" in page.text_content("#panel")
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    page.goto(f"{kaon_server.url}/ui/compare?runs={first},{second}")
    page.wait_for_selector("#compare table")
    assert "param n" in page.text_content("#compare")
    assert "metric each[*].square loss" in page.text_content("#compare")
    assert "(mean of 30)" in page.text_content("#compare")
    page.screenshot(path=str(tmp_path / "compare.png"))

    page.goto(f"{kaon_server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    page.goto(f"{kaon_server.url}/redoc")
    page.wait_for_selector("text=Orchestrate and schedule", timeout=20_000)
    page.context.close()


def test_run_page_updates_live(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = start(kaon_server, "fan", n=6, pause="0.2", gate=str(gate))
    page = page_as(browser, kaon_server, tokens["viewer"])
    page.goto(f"{kaon_server.url}/ui/runs/{run_id}")
    page.wait_for_selector("#live.on")
    page.wait_for_function("document.querySelector('#run-status').textContent === 'running'")
    page.evaluate("window.notReloaded = true")
    assert page.get_attribute("#graph", "data-nodes") == "3"
    gate.touch()  # the run goes on: items appear, then everything succeeds
    page.wait_for_function(
        "document.querySelector('#run-status').textContent === 'succeeded'", timeout=30_000
    )
    page.wait_for_selector("#counts [data-count=succeeded]")
    page.wait_for_function(
        "document.querySelector('#counts [data-count=succeeded]').textContent === 'succeeded 8'"
    )
    page.wait_for_selector("#item-table tbody tr[data-path='each[5]']")
    assert page.evaluate("window.notReloaded") is True
    page.context.close()


def test_kill_is_refused_for_a_viewer_and_done_for_an_operator(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    run_id = start(kaon_server, "slow")
    wait_status(kaon_server, run_id, {"running"})
    viewer = page_as(browser, kaon_server, tokens["viewer"])
    viewer.goto(f"{kaon_server.url}/ui/runs/{run_id}")
    viewer.wait_for_selector("#graph canvas")
    viewer.click("[data-action=kill]")
    viewer.click("dialog [data-confirm=yes]")
    viewer.wait_for_selector("#banner.error")
    assert viewer.text_content("#banner").startswith("Refused:")
    viewer.screenshot(path=str(tmp_path / "refused.png"))
    viewer.context.close()
    assert kaon_server.client().get(f"/runs/{run_id}").json()["status"] == "running"

    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/runs/{run_id}")
    operator.wait_for_selector("#graph canvas")
    operator.click("[data-action=kill]")
    operator.click("dialog [data-confirm=yes]")
    operator.wait_for_function("document.querySelector('#run-status').textContent === 'cancelled'")
    operator.context.close()
    audit = kaon_server.client().get("/audit").json()
    assert any(a["action"] == "run.kill" and a["actor"] == "ops" for a in audit), audit
    assert httpx.get(f"{kaon_server.url}/ui/static/vendor/cytoscape.min.js").status_code == 200


def confirm(page: Any, check: bool = False, value: str | None = None) -> None:
    """Answer the open confirmation dialog."""
    if value is not None:
        page.fill("dialog input[name=value]", value)
    if check:
        page.check("dialog input[name=check]")
    page.click("dialog [data-confirm=yes]")


def test_workflow_page_start_form_diff_activate_and_audit(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": FAN_V2, "file_name": "flow.yaml"})
    assert pushed.json()["version"] == 2, pushed.text
    url = f"{kaon_server.url}/ui/workflows/fan"

    viewer = page_as(browser, kaon_server, tokens["viewer"])
    viewer.goto(url)
    viewer.wait_for_selector("#start-fields [data-param=n] input")
    viewer.click("#start button[type=submit]")
    confirm(viewer)
    viewer.wait_for_selector("#banner.error")
    assert viewer.text_content("#banner").startswith("Refused:")
    viewer.click("#unblock")
    confirm(viewer)
    viewer.wait_for_selector("#banner.error:has-text('Refused: Unblock fan')")
    viewer.context.close()

    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(url)
    operator.wait_for_selector("#start-fields [data-param]")
    operator.click("#unblock")
    confirm(operator)
    operator.wait_for_selector("text=fan was not blocked")
    operator.wait_for_selector("#wf-audit tr[data-audit='workflow.unblock']:has-text('ops')")
    # The form is made from v2's typed parameters: types, defaults, one input each.
    operator.wait_for_selector("#start-fields [data-param=pause]")
    assert operator.input_value("#param-n") == "12"
    assert operator.get_attribute("#param-n", "type") == "number"
    assert "int" in operator.text_content("[data-param=n] label")
    # A number the browser cannot read is refused in the form (it was dropped: the default ran).
    operator.fill("#param-n", "")
    operator.type("#param-n", "1e")
    operator.click("#start button[type=submit]")
    operator.wait_for_selector("[data-error-for=n]:not([hidden])")
    assert "not a number" in operator.text_content("[data-error-for=n]")
    operator.fill("#param-pause", "")
    operator.evaluate("document.querySelector('#param-n').type = 'text'")
    operator.fill("#param-n", "many")
    operator.click("#start button[type=submit]")
    confirm(operator)
    operator.wait_for_selector("[data-error-for=n]:not([hidden])")
    assert "int" in operator.text_content("[data-error-for=n]")
    assert operator.is_hidden("[data-error-for=pause]")
    shot(operator, tmp_path, "workflow-form-errors.png")
    operator.fill("#param-n", "4")
    operator.click("#start button[type=submit]")
    confirm(operator)
    operator.wait_for_url("**/ui/runs/*")
    run_id = operator.url.rsplit("/", 1)[-1]
    wait_status(kaon_server, run_id, {"succeeded"})
    assert admin.get(f"/runs/{run_id}").json()["params"]["n"] == 4

    # Activating a version needs the owner role: an operator is refused.
    operator.goto(url)
    operator.wait_for_selector("#versions [data-activate='1']")
    operator.click("#versions [data-activate='1']")
    confirm(operator)
    operator.wait_for_selector("#banner.error")
    assert operator.text_content("#banner").startswith("Refused:")
    operator.context.close()

    owner = page_as(browser, kaon_server, tokens["admin"])
    owner.goto(url)
    owner.wait_for_selector("#versions tr[data-version='1'] .diff-pick")
    owner.check("#versions tr[data-version='1'] .diff-pick")
    owner.check("#versions tr[data-version='2'] .diff-pick")
    owner.click("#diff-selected")
    assert owner.is_disabled("#versions-pager [data-versions=older]")  # 2 versions: one page
    owner.wait_for_selector("#diff-source .add")
    assert "n: {type: int, default: 12}" in owner.text_content("#diff-source .add")
    assert "n: {type: int, default: 30}" in owner.text_content("#diff-source .del")
    owner.click("#versions [data-activate='1']")
    confirm(owner)
    owner.wait_for_selector("#wf-audit tr[data-audit='workflow.activate']")
    assert "root" in owner.text_content("#wf-audit tr[data-audit='workflow.activate']")
    assert admin.get("/workflows/fan").json()["active_version"] == 1
    # The run history filters in the database: by text (id, parameters), status, dates.
    owner.fill("#run-text", run_id[-10:])
    owner.press("#run-text", "Enter")
    owner.wait_for_selector("#runs-pager [data-total='1']")
    assert owner.text_content("#runs tbody tr").count(run_id) == 1
    owner.fill("#run-text", "")
    owner.press("#run-text", "Enter")
    owner.select_option("#run-status", "succeeded")
    owner.wait_for_function(
        "[...document.querySelectorAll('#runs tbody .badge')].length >= 1 &&"
        " [...document.querySelectorAll('#runs tbody .badge')]"
        ".every(b => b.textContent === 'succeeded')"
    )
    shot(owner, tmp_path, "workflow.png", full_page=True)
    owner.context.close()


def test_step_panel_previews_lineage_explain_and_item_actions(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    made = start(kaon_server, "outputs", n=40)
    fan = start(kaon_server, "fan", n=8)
    wait_status(kaon_server, made, {"succeeded"})
    wait_status(kaon_server, fan, {"succeeded"})

    page = page_as(browser, kaon_server, tokens["viewer"])
    page.goto(f"{kaon_server.url}/ui/runs/{made}?step=table")
    page.wait_for_selector("#panel [data-preview]")
    page.click("#panel [data-preview]")
    page.wait_for_selector("#panel .preview table td")
    assert page.text_content("#panel .preview thead").startswith("userscore")
    assert "20 of 40 rows" in page.text_content("#panel .preview small")
    page.click("#panel [data-lineage]")
    page.wait_for_selector("#panel [data-used-by] a")
    assert page.get_attribute("#panel [data-used-by] a", "href").endswith("?step=top")
    page.click("#panel [data-explain]")
    page.wait_for_selector("#panel [data-verdict]")
    shot(page, tmp_path, "step-panel.png", full_page=True)
    page.click("#panel [data-used-by] a")  # lineage goes both ways
    page.wait_for_selector("#panel[data-path=top] [data-lineage]")
    page.click("#panel [data-lineage]")
    page.wait_for_selector("#panel [data-made-from] a")
    assert page.get_attribute("#panel [data-made-from] a", "href").endswith("?step=table")
    page.goto(f"{kaon_server.url}/ui/runs/{made}?step=chart")
    page.click("#panel [data-preview]")
    page.wait_for_selector("#panel .preview img[src^='data:image/png']")
    page.goto(f"{kaon_server.url}/ui/runs/{made}?step=report")
    page.click("#panel [data-preview]")
    frame = page.wait_for_selector("#panel .preview iframe").content_frame()
    assert frame is not None
    frame.wait_for_selector("text=Validation report")

    # A foreach shows its progress; retrying one item is refused for a viewer...
    page.goto(f"{kaon_server.url}/ui/runs/{fan}?step=each")
    page.wait_for_selector("#panel [data-progress='100']")
    assert "8 of 8 done" in page.text_content("#panel .progress-box")
    page.goto(f"{kaon_server.url}/ui/runs/{fan}?step=each[3]")
    page.click("#panel [data-step-action=retry-item]")
    confirm(page, check=True)
    page.wait_for_selector("#banner.error")
    assert page.text_content("#banner").startswith("Refused:")
    page.context.close()

    # ... and done for an operator, forced, then skip with a value; the audit shows who.
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/runs/{fan}?step=each[3]")
    operator.click("#panel [data-step-action=retry-item]")
    confirm(operator, check=True)
    operator.wait_for_selector("#banner:not(.error)")
    wait_status(kaon_server, fan, {"succeeded"})
    operator.click("#audit-box summary")
    operator.wait_for_selector("#run-audit tr[data-audit='run.restart']")
    restart = operator.text_content("#run-audit tr[data-audit='run.restart']")
    assert "ops" in restart and "from_step=each[3]" in restart and "force=true" in restart
    shot(operator, tmp_path, "run-audit.png", full_page=True)
    assert kaon_server.client().get(f"/runs/{fan}").json()["restarts"] == 1
    slow = start(kaon_server, "slow")
    wait_status(kaon_server, slow, {"running"})
    assert kaon_server.client().post(f"/runs/{slow}/kill").status_code == 200
    operator.goto(f"{kaon_server.url}/ui/runs/{slow}?step=wait")
    operator.click("#panel [data-step-action=skip]")
    confirm(operator, value='"by hand"')
    operator.wait_for_selector("text=the run goes on from there")  # a killed run: restarted
    skipped = kaon_server.client().get(f"/runs/{slow}/step", params={"path": "wait"}).json()
    assert skipped["step"]["status"] == "skipped"
    assert skipped["step"]["outputs"]["return"]["value"] == "by hand"
    # A step not taken is greyed in the graph with its reason.
    operator.wait_for_function(
        "(document.querySelector('#graph').dataset.notTaken || '').includes('wait: skipped by')"
    )
    # Resume is for an active run whose engine died: on a finished run the page says why not.
    operator.click("[data-action=resume]")
    confirm(operator)
    operator.wait_for_selector("#banner.error")
    assert operator.text_content("#banner").startswith("Not possible now:")
    # Restart from failed steps, forced: the skipped step keeps its value and the run ends.
    operator.click("[data-action=restart]")
    confirm(operator, check=True)
    wait_status(kaon_server, slow, {"succeeded"})
    operator.wait_for_function("document.querySelector('#run-status').textContent === 'succeeded'")
    restarted = kaon_server.client().get(f"/runs/{slow}/audit").json()[-1]
    assert (restarted["actor"], restarted["action"], restarted["data"]["force"]) == (
        "ops",
        "run.restart",
        True,
    )
    operator.context.close()


# A step with an upstream input and a parameter input (the step panel shows both).
WIRED = """\
name: wired
params:
  k: {type: int, default: 4}
steps:
  - id: prepare
    shell: echo ::kaon::output rows=[1,2,3]
  - id: fit
    shell: echo fit
    inputs: {rows: "${{ steps.prepare.rows }}", k: "${{ params.k }}"}
"""


def test_step_panel_shows_every_step_s_inputs(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    """A step that ran (no breakpoint) shows its inputs: an upstream output, linked to its
    step, and a parameter; an artifact input offers the upstream output's preview."""
    pushed = kaon_server.client().post("/workflows", json={"source": WIRED, "file_name": "w.yaml"})
    assert pushed.status_code < 300, pushed.text
    wired = start(kaon_server, "wired", k=9)
    made = start(kaon_server, "outputs", n=12)
    wait_status(kaon_server, wired, {"succeeded"})
    wait_status(kaon_server, made, {"succeeded"})

    page = page_as(browser, kaon_server, tokens["viewer"])
    page.goto(f"{kaon_server.url}/ui/runs/{wired}?step=fit")
    page.wait_for_selector("#panel [data-input=rows]")
    assert page.text_content("#panel [data-input=rows] [data-input-step]") == "prepare.rows"
    assert page.text_content("#panel [data-input-value=rows]") == "[1, 2, 3]"
    assert page.text_content("#panel [data-input=k] [data-input-param]") == "parameter k"
    assert page.text_content("#panel [data-input-value=k]") == "9"
    assert "${{ params.k }}" in page.text_content("#panel [data-input=k]")
    shot(page, tmp_path, "step-inputs.png", full_page=True)
    page.click("#panel [data-input-step]")  # the upstream step opens in the panel
    page.wait_for_selector("#panel[data-path=prepare] [data-output=rows]")
    page.goto(f"{kaon_server.url}/ui/runs/{made}?step=top")
    page.wait_for_selector("#panel [data-input-preview=frame]")
    assert "DataFrame" in page.text_content("#panel [data-input-value=frame]")
    page.click("#panel [data-input-preview=frame]")
    page.wait_for_selector("#panel [data-input-value=frame] .preview table td")
    page.context.close()


# A run paused before ``use`` holds the value ``make`` gave it.
HELD = """\
name: held
params:
  k: {type: int, default: 41}
steps:
  - id: make
    shell: echo ::kaon::output value=$KAON_INPUT_K
    inputs: {k: "${{ params.k }}"}
  - id: use
    needs: [make]
    shell: echo got $KAON_INPUT_V
    inputs: {v: "${{ steps.make.value }}"}
"""


def test_breakpoint_from_the_start_form_then_continue(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str], tmp_path: Path
) -> None:
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": HELD, "file_name": "held.yaml"})
    assert pushed.status_code < 300, pushed.text
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/workflows/held")
    operator.wait_for_selector("#start-fields [data-param=k]")
    operator.fill("#start-breakpoints", "nosuch")
    operator.click("#start button[type=submit]")
    confirm(operator)
    operator.wait_for_selector("#start-break-error:not([hidden])")
    assert "no step 'nosuch'" in operator.text_content("#start-break-error")
    operator.fill("#start-breakpoints", "use")
    operator.click("#start button[type=submit]")
    confirm(operator)
    operator.wait_for_url("**/ui/runs/*")
    run_id = operator.url.rsplit("/", 1)[-1]
    operator.wait_for_function("document.querySelector('#run-status').textContent === 'paused'")
    assert operator.get_attribute("#graph", "data-held") == "use"
    assert "1 step held" in operator.text_content("#held-note")
    assert operator.is_visible("#continue-run")

    # A viewer sees what the step holds, and is refused when continuing it.
    viewer = page_as(browser, kaon_server, tokens["viewer"])
    viewer.goto(f"{kaon_server.url}/ui/runs/{run_id}?step=use")
    viewer.wait_for_selector("#panel [data-held=before] [data-held-value=v]")
    assert viewer.text_content("#panel [data-held-value=v]") == "41"
    viewer.click("#panel [data-continue=step]")
    confirm(viewer)
    viewer.wait_for_selector("#banner.error")
    assert viewer.text_content("#banner").startswith("Refused:")
    viewer.context.close()
    assert admin.get(f"/runs/{run_id}/summary").json()["status"] == "paused"

    # The operator continues this step with a changed parameter; the run ends.
    operator.goto(f"{kaon_server.url}/ui/runs/{run_id}?step=use")
    operator.wait_for_selector("#panel [data-held=before]")
    shot(operator, tmp_path, "run-paused.png", full_page=True)
    operator.click("#panel [data-continue=step]")
    confirm(operator, value='{"k": 5}')
    operator.wait_for_function(
        "document.querySelector('#run-status').textContent === 'succeeded'", timeout=30_000
    )
    assert operator.is_hidden("#continue-run") and operator.is_hidden("#held-note")
    assert admin.get(f"/runs/{run_id}").json()["params"] == {"k": 5}
    held = [a for a in admin.get(f"/runs/{run_id}/audit").json() if a["action"] == "run.continue"]
    assert [(a["actor"], a["data"]["path"]) for a in held] == [("ops", "use")]
    operator.context.close()


PICKED = """\
name: picked
params:
  size: {choices: [small, large], default: small}
  lr: {type: float, nullable: true, default: 0.1}
  tag: {choices: ["", x], default: x}
steps:
  - id: show
    shell: echo $KAON_INPUT_S $KAON_INPUT_L
    inputs: {s: "${{ params.size }}", l: "${{ params.lr }}"}
"""


def test_start_form_offers_the_choices_and_takes_null(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": PICKED, "file_name": "picked.yaml"})
    assert pushed.status_code < 300, pushed.text
    fields = admin.get("/workflows/picked/params").json()["params"]
    assert [(f["name"], f["choices"], f["nullable"]) for f in fields] == [
        ("size", ["small", "large"], False),
        ("lr", [], True),
        ("tag", ["", "x"], False),
    ]
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/workflows/picked")
    operator.wait_for_selector("#start-fields select#param-size")
    options = operator.eval_on_selector_all("#param-size option", "os => os.map(o => o.value)")
    assert options == ["", "small", "large"]
    assert "float or null" in operator.text_content("[data-param=lr] label")
    assert operator.get_attribute("#param-lr", "type") == "text"  # a number field holds no null
    operator.select_option("#param-size", "large")
    operator.select_option("#param-tag", index=1)  # the empty string: a choice, not "default"
    operator.fill("#param-lr", "null")
    operator.click("#start button[type=submit]")
    confirm(operator)
    operator.wait_for_url("**/ui/runs/*")
    run_id = operator.url.rsplit("/", 1)[-1]
    wait_status(kaon_server, run_id, {"succeeded"})
    assert admin.get(f"/runs/{run_id}").json()["params"] == {"size": "large", "lr": None, "tag": ""}
    operator.context.close()


APPROVAL = """\
name: approval
steps:
  - id: approve
    wait: {signal: approved, match: "signal.ok == true"}
  - id: ship
    needs: [approve]
    shell: echo shipping
"""


def test_a_waiting_step_s_panel_sends_its_signal(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": APPROVAL, "file_name": "approval.yaml"})
    assert pushed.status_code < 300, pushed.text
    run_id = admin.post("/runs", json={"workflow": "approval"}).json()["id"]
    wait_status(kaon_server, run_id, {"running"})
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/runs/{run_id}?step=approve")
    operator.wait_for_selector("#panel [data-wait=approved] [data-send-signal]", timeout=30_000)
    assert "signal.ok == true" in operator.text_content("#panel [data-wait=approved]")
    operator.click("#panel [data-send-signal]")
    confirm(operator, value='{"ok": true}')
    operator.wait_for_selector("#banner:has-text('Sent signal approved')")
    wait_status(kaon_server, run_id, {"succeeded"})
    signals = admin.get("/signals", params={"name": "approved"}).json()
    assert [s["params"] for s in signals] == [{"ok": True}]
    operator.context.close()


LANDED = """name: landed
params:
  day: {type: int, default: 0}
steps:
  - id: load
    shell: echo loading
triggers:
  - signal: landed
"""


def test_the_workflow_page_shows_what_its_triggers_fired(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    """Each firing with the run it started, or why it started none (a signal's parameter
    of the wrong type: the firing is dropped with the error, which was only in the log)."""
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": LANDED, "file_name": "landed.yaml"})
    assert pushed.status_code < 300, pushed.text
    deadline = time.monotonic() + 30
    while not admin.get("/triggers", params={"workflow": "landed"}).json():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)  # the trigger loop sees the new version before the signals
    for day in (7, "seven"):
        assert admin.post("/signals", json={"name": "landed", "params": {"day": day}}).is_success
    while len(admin.get("/triggers/firings", params={"workflow": "landed"}).json()) < 2:
        assert time.monotonic() < deadline, "no firings"
        time.sleep(0.1)
    dropped, created = admin.get("/triggers/firings", params={"workflow": "landed"}).json()
    assert (dropped["status"], created["status"]) == ("dropped", "created"), (dropped, created)
    viewer = page_as(browser, kaon_server, tokens["viewer"])
    viewer.goto(f"{kaon_server.url}/ui/workflows/landed")
    run_link = f"#firings [data-firing-status=created] a[href='/ui/runs/{created['run_id']}']"
    viewer.wait_for_selector(run_link)
    assert "signal landed" in viewer.text_content("#firings [data-firing-status=created]")
    shown = viewer.text_content("#firings [data-firing-status=dropped]")
    assert "day" in shown and "int" in shown, shown
    viewer.click(run_link)
    viewer.wait_for_url(f"**/ui/runs/{created['run_id']}")
    viewer.context.close()


FAILING = """name: skipper
steps:
  - id: bad
    shell: "exit 3"
  - id: after
    shell: "echo after"
    needs: [bad]
"""


def test_skip_in_a_finished_run_goes_on_from_there(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    """The panel's Skip on a failed run's step said "Skip recorded" and the run stayed
    failed; as `kaon skip` does, the run now goes on from there."""
    admin = kaon_server.client()
    pushed = admin.post("/workflows", json={"source": FAILING, "file_name": "skipper.yaml"})
    assert pushed.status_code < 300, pushed.text
    run_id = admin.post("/runs", json={"workflow": "skipper"}).json()["id"]
    wait_status(kaon_server, run_id, {"failed"})
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/runs/{run_id}?step=bad")
    operator.click("[data-step-action=skip]")
    confirm(operator, value="5")
    operator.wait_for_selector("#banner:has-text('the run goes on from there')")
    wait_status(kaon_server, run_id, {"succeeded"})
    steps = {s["path"]: s["status"] for s in admin.get(f"/runs/{run_id}").json()["steps"]}
    assert steps == {"bad": "skipped", "after": "succeeded"}
    operator.context.close()


def test_skip_in_a_running_run_says_what_happens(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    """The panel's Skip on a running run's step answered with the API's word for how the
    skip went ("Skip command"); it now says what happens, as the other actions do."""
    run_id = start(kaon_server, "slow")
    wait_status(kaon_server, run_id, {"running"})
    operator = page_as(browser, kaon_server, tokens["operator"])
    operator.goto(f"{kaon_server.url}/ui/runs/{run_id}?step=wait")
    operator.click("#panel [data-step-action=skip]")
    confirm(operator)
    operator.wait_for_selector("#banner:not(.error):has-text('skips it now')")
    shown = operator.text_content("#banner") or ""
    assert shown.startswith("Skipping wait") and "command" not in shown, shown
    wait_status(kaon_server, run_id, {"succeeded"})
    operator.context.close()


def test_the_run_history_pages_older_and_back_by_keyset(
    browser: Any, kaon_server: ServerProcess, tokens: dict[str, str]
) -> None:
    """The workflow page's run history follows ``before`` (the last run shown) to the older
    page, where it asked for an ``offset`` that the server stepped over run by run."""
    admin = kaon_server.client()
    source = "name: paged\nsteps:\n  - id: a\n    shell: echo hi\n"
    assert admin.post("/workflows", json={"source": source, "file_name": "paged.yaml"}).is_success
    made = [start(kaon_server, "paged") for _ in range(30)]
    asked: list[str] = []
    viewer = page_as(browser, kaon_server, tokens["viewer"])
    viewer.on(
        "request", lambda r: asked.append(r.url) if "/workflows/paged/runs" in r.url else None
    )
    viewer.goto(f"{kaon_server.url}/ui/workflows/paged")
    viewer.wait_for_selector("#runs-pager span:has-text('1\u201325 of 30')")
    viewer.click("#runs-pager button:has-text('older')")
    viewer.wait_for_selector("#runs-pager span:has-text('26\u201330 of 30')")
    older = viewer.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.run)")
    assert older == list(reversed(made[:5])), older
    assert "before=" in asked[-1] and "offset" not in asked[-1], asked
    viewer.click("#runs-pager button:has-text('newer')")
    viewer.wait_for_selector("#runs-pager span:has-text('1\u201325 of 30')")
    newest = viewer.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.run)")
    assert newest == list(reversed(made[5:])), newest
    viewer.context.close()
