"""The run page of a big run in a real browser: first paint of the graph and counts, paging.

Builds a run of ``--items`` foreach items and 50 other steps (``bench/bigrun.py``) in a fresh
Kaon home, starts ``kaon server`` on it (loopback, inline executor), logs in with Debian's
Chromium driven by Playwright, and measures, best of ``--repeat``:

- ``first_paint_ms``: from navigating to the run page to the graph drawn with its counts and
  the first page of items shown (target < 1 s at 100,000 items);
- ``next_page_ms``: from a click on "next" to the next 100 items shown;
- ``filter_ms``: from choosing the ``failed`` status filter to the filtered page shown;
- ``js_heap_mb``: the page's JavaScript heap afterwards (Chromium's performance.memory);
- while ``--events-per-s`` step events a second are written into the run for ``--stream-s``
  seconds (the page follows them over ``GET /events``): ``input_delay_p95_ms`` /
  ``input_delay_max_ms``, how late a 50 ms timer fires on the page's main thread (what a
  click would wait; target < 100 ms), and ``js_heap_streaming_mb``.

With ``--history-runs N`` it times instead the page of a workflow with N finished runs in
its history (a version, a cron trigger, the start form): ``workflow_page_ms`` from
navigating to the page to its first 25 runs, versions, start form and next fire time shown
(target < 1 s at 2,000 runs), ``workflows_page_ms`` for the list of workflows with the strip
of last runs, ``filter_failed_ms``, ``older_page_ms`` and ``js_heap_mb``.

Prints one JSON line. Needs ``/usr/bin/chromium`` and the ``playwright`` package (never
``playwright install``).

    python bench/ui_bench.py --items 100000 --screenshot docs/screenshots/big-run.png
    python bench/ui_bench.py --history-runs 2000 --screenshot docs/screenshots/history.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bigrun import build_big_run

from kaon.store import default_store_url, open_store

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KAON = str(Path(sys.executable).parent / "kaon")
READY = (
    "() => document.querySelector('#graph[data-nodes] canvas') &&"
    " document.querySelector('#counts [data-count]') &&"
    " document.querySelector('#item-table tbody tr')"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(home: Path) -> tuple[subprocess.Popen[str], str, str]:
    port = _free_port()
    command = [KAON, "server", "--home", str(home), "--port", str(port), "-e", "inline"]
    process = subprocess.Popen(
        [*command, "--bootstrap-token", "bench"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ},
    )
    assert process.stdout is not None
    token = process.stdout.readline().rsplit(": ", 1)[-1].strip()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, url, token


def _timed(page: Any, action: Any, ready: str) -> float:
    started = time.perf_counter()
    action()
    page.wait_for_function(ready, timeout=60_000)
    return (time.perf_counter() - started) * 1000


_LAG_PROBE = """() => {
  window.kaonLag = [];
  let last = performance.now();
  window.kaonProbe = setInterval(() => {
    const now = performance.now();
    window.kaonLag.push(now - last - 50);
    last = now;
  }, 50);
}"""


def _stream_events(
    page: Any, home: Path, run_id: str, per_s: int, seconds: float
) -> dict[str, Any]:
    """Write ``per_s`` step events a second into the run for ``seconds`` while the page is
    open; the page's main-thread delay (a 50 ms timer's lateness: what an input would wait)
    and heap tell whether it stays responsive."""
    import threading

    from kaon.store.base import EventRecord, WriteBatch

    if per_s <= 0:
        return {}
    store = open_store(default_store_url(home))
    written = [0]

    def write() -> None:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(per_s * elapsed) - written[0]  # keep the rate whatever a write costs
            batch = WriteBatch()
            for n in range(max(due, 0)):
                index = (written[0] + n) % 1000
                data = {"path": f"segments[{index}].train", "status": "running"}
                batch.events.append(EventRecord(run_id, "step", time.time(), data))
            if batch:
                store.write(batch)
            written[0] += max(due, 0)
            time.sleep(0.02)

    page.evaluate(_LAG_PROBE)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join()
    time.sleep(1.0)
    lags = sorted(page.evaluate("() => { clearInterval(window.kaonProbe); return kaonLag; }"))
    store.close()
    heap = page.evaluate("() => performance.memory.usedJSHeapSize")
    return {
        "events_written": written[0],
        "events_per_s": round(written[0] / seconds),
        "input_delay_p95_ms": round(lags[int(len(lags) * 0.95)]) if lags else None,
        "input_delay_max_ms": round(lags[-1]) if lags else None,
        "js_heap_streaming_mb": round(heap / 2**20, 1),
    }


def measure(
    items: int,
    repeat: int,
    screenshot: str | None,
    steps: int = 50,
    events_per_s: int = 500,
    stream_s: float = 5.0,
) -> dict[str, Any]:
    """Build the run, serve it, and time the run page in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir()
        store = open_store(default_store_url(home))
        try:
            run_id = build_big_run(store, items, steps, held_by="bench-ui")
        finally:
            store.close()
        process, url, token = _serve(home)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 820})
                page.goto(f"{url}/ui/login")
                page.fill("input[name=token]", token)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/ui")
                paints = []
                for _ in range(repeat):
                    page.goto("about:blank")
                    paints.append(_timed(page, lambda: page.goto(f"{url}/ui/runs/{run_id}"), READY))
                pager = "() => document.querySelector('#item-pager [data-total]').textContent"
                first = page.evaluate(pager)
                moved = (
                    "() => document.querySelector('#item-pager [data-total]').textContent"
                    f" !== {json.dumps(first)}"
                )
                next_page = _timed(page, lambda: page.click("#item-pager button >> nth=1"), moved)
                filtered = (
                    "() => [...document.querySelectorAll('#item-table tbody tr')].length > 0 &&"
                    " [...document.querySelectorAll('#item-table tbody .badge')]"
                    ".every(b => b.textContent === 'failed')"
                )
                filter_ms = _timed(
                    page, lambda: page.select_option("#f-status", "failed"), filtered
                )
                page.select_option("#f-status", "")
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#item-table tbody .badge')]"
                    ".some(b => b.textContent !== 'failed')"
                )
                heap = page.evaluate("() => performance.memory.usedJSHeapSize")
                streamed = _stream_events(page, home, run_id, events_per_s, stream_s)
                if screenshot:
                    page.click("#item-table tbody tr >> nth=7")  # item 7 failed: open it
                    page.click("#item-table tbody tr[data-path$='.train']")
                    page.wait_for_selector("#panel .logs")
                    page.screenshot(path=screenshot)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "items": items,
        "steps": steps,
        "first_paint_ms": round(min(paints)),
        "first_paint_all_ms": [round(p) for p in paints],
        "next_page_ms": round(next_page),
        "filter_ms": round(filter_ms),
        "js_heap_mb": round(heap / 2**20, 1),
        **streamed,
    }


HISTORY_FLOW = """name: history
params:
  day: {type: str, default: "today"}
  rows: {type: int, default: 1000}
triggers:
  - cron: "0 6 * * *"
    timezone: Europe/Paris
steps:
  - id: work
    shell: "true"
"""
HISTORY_READY = (
    "() => document.querySelectorAll('#runs tbody tr').length === 25 &&"
    " document.querySelector('#versions tbody tr') &&"
    " document.querySelector('#start-fields [data-param]') &&"
    " document.querySelector('#triggers .next-fire')"
)


def _write_history(home: Path, digest: str, runs: int) -> None:
    """``runs`` finished runs of workflow ``history``, written straight through the store."""
    from kaon.model.status import RunStatus
    from kaon.store.base import RunRecord, WriteBatch

    store = open_store(default_store_url(home))
    try:
        now = time.time()
        batch = WriteBatch()
        for i in range(runs):
            status = RunStatus.FAILED if i % 17 == 3 else RunStatus.SUCCEEDED
            created = now - (runs - i) * 60
            batch.runs.append(
                RunRecord(
                    f"hist-{i:06d}",
                    "history",
                    digest,
                    status,
                    params={"day": f"d{i}", "rows": i},
                    created_at=created,
                    started_at=created + 1,
                    ended_at=created + 30,
                    executor="inline",
                    labels={"by": "bench", "version": 1},
                )
            )
        store.write(batch)
    finally:
        store.close()


def measure_history(runs: int, repeat: int, screenshot: str | None) -> dict[str, Any]:
    """A workflow with ``runs`` runs in its history: time its page in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir()
        process, url, token = _serve(home)
        try:
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            pushed = client.post("/workflows", json={"source": HISTORY_FLOW, "file_name": "h.yaml"})
            pushed.raise_for_status()
            digest = client.get("/workflows/history/versions").json()[0]["definition_hash"]
            _write_history(home, digest, runs)
            client.close()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/ui/login")
                page.fill("input[name=token]", token)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/ui")
                listed = []
                opened = []
                history = f"{url}/ui/workflows/history"
                strip = (
                    "() => document.querySelector('#workflows tr[data-workflow=history] .strip a')"
                )
                for _ in range(repeat):
                    page.goto("about:blank")
                    listed.append(_timed(page, lambda: page.goto(f"{url}/ui"), strip))
                    page.goto("about:blank")
                    opened.append(_timed(page, lambda: page.goto(history), HISTORY_READY))
                failed = (
                    "() => [...document.querySelectorAll('#runs tbody .badge')].length > 0 &&"
                    " [...document.querySelectorAll('#runs tbody .badge')]"
                    ".every(b => b.textContent === 'failed')"
                )
                choose = lambda: page.select_option("#run-status", "failed")  # noqa: E731
                filter_ms = _timed(page, choose, failed)
                page.select_option("#run-status", "")
                page.wait_for_function(
                    "() => document.querySelectorAll('#runs tbody tr').length === 25 &&"
                    " [...document.querySelectorAll('#runs tbody .badge')]"
                    ".some(b => b.textContent !== 'failed')"
                )
                first = page.text_content("#runs tbody tr")
                older = (
                    "() => document.querySelector('#runs tbody tr') &&"
                    f" document.querySelector('#runs tbody tr').textContent !== {json.dumps(first)}"
                )
                older_ms = _timed(page, lambda: page.click("#runs-pager button >> nth=1"), older)
                heap = page.evaluate("() => performance.memory.usedJSHeapSize")
                if screenshot:
                    page.screenshot(path=screenshot, full_page=True)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "history_runs": runs,
        "workflows_page_ms": round(min(listed)),
        "workflow_page_ms": round(min(opened)),
        "workflow_page_all_ms": [round(p) for p in opened],
        "filter_failed_ms": round(filter_ms),
        "older_page_ms": round(older_ms),
        "js_heap_mb": round(heap / 2**20, 1),
    }


def main() -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=50, help="tasks before the foreach")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events-per-s", type=int, default=500, help="0: no streaming")
    parser.add_argument("--stream-s", type=float, default=5.0)
    parser.add_argument("--screenshot", help="save a PNG of the run page here")
    parser.add_argument(
        "--history-runs",
        type=int,
        default=0,
        help="instead: time the page of a workflow with this many runs in its history",
    )
    args = parser.parse_args()
    if args.history_runs:
        found = measure_history(args.history_runs, args.repeat, args.screenshot)
        print(json.dumps(found), flush=True)
        return
    print(
        json.dumps(
            measure(
                args.items,
                args.repeat,
                args.screenshot,
                args.steps,
                args.events_per_s,
                args.stream_s,
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
