"""The run page of a big run in a real browser: first paint of the graph and counts, paging.

Builds a run of ``--items`` foreach items and 50 other steps (``bench/bigrun.py``) in a fresh
Kaon home, starts ``kaon server`` on it (loopback, inline executor), logs in with Debian's
Chromium driven by Playwright, and measures (each timing ``--repeat`` times; the median is
reported, and every value beside it):

- ``first_paint_ms``: from navigating to the run page to the graph drawn with its counts and
  the first page of items shown (target < 1 s at 100,000 items);
- ``next_page_ms``: from a click on "next" to the next 100 items shown;
- ``filter_ms``: from choosing the ``failed`` status filter to the filtered page shown;
- ``js_heap_mb``: the page's JavaScript heap afterwards (Chromium's performance.memory);
- while ``--events-per-s`` step events a second are written into the run (the page follows
  them over ``GET /events`` and re-reads what it shows): ``streaming.first_paint_ms``, the
  first paint again with the events streaming; ``streaming.input_delay_*``, from a real click
  (a mouse press sent through the browser every 200 ms for ``--stream-s`` seconds) to the
  page's handler starting (``performance.now() - event.timeStamp``: the input delay, target
  < 100 ms); ``streaming.timer_lag_*``, how late a 50 ms timer fires on the main thread;
  ``streaming.long_tasks`` / ``long_task_max_ms``, the tasks that held the main thread over
  50 ms (Chromium's long-task timing); ``streaming.renderer_cpu_pct``, the CPU time the
  renderer processes used over that window (the page's own work, load-independent);
  ``streaming.js_heap_mb``;
- ``browser_mb_peak``: the whole browser's memory (the proportional set size, PSS, of every
  Chromium process of the bench: browser, renderer, GPU and utility processes), sampled
  every 0.25 s from login to the end, peak (target < 300 MB).

With ``--history-runs N`` it times instead the page of a workflow with N finished runs in
its history (a version, a cron trigger, the start form): ``workflow_page_ms`` from
navigating to the page to its first 25 runs, versions, start form and next fire time shown
(target < 1 s at 2,000 runs), ``workflows_page_ms`` for the list of workflows with the strip
of last runs, ``filter_failed_ms``, ``older_page_ms``, ``js_heap_mb``, and the same
``streaming`` figures (the workflow page opened and clicked while events stream into one of
its runs) and ``browser_mb_peak``.

Prints one JSON line. Needs ``/usr/bin/chromium`` and the ``playwright`` package (never
``playwright install``).

    python bench/ui_bench.py --items 100000 --repeat 5 --screenshot docs/screenshots/big-run.png
    python bench/ui_bench.py --history-runs 2000 --repeat 5 \
        --screenshot docs/screenshots/history.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

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


class _BrowserMemory:
    """Samples, in a thread, the memory of every Chromium process this bench started (its
    descendants: Playwright's driver starts the browser, which starts the renderers, GPU and
    utility processes); keeps the peaks. PSS counts a page shared by n processes 1/n each, so
    the sum is what the browser as a whole holds. The page's own renderer is the largest
    renderer process (the others hold about:blank or are Chromium's spare renderer)."""

    def __init__(self, every_s: float = 0.25) -> None:
        import threading

        self.peak = 0.0
        self.renderer_peak = 0.0
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[float, float]:
        """The browser's memory now and its largest renderer's (MB); the peaks updated."""
        total = renderer = 0
        for process in psutil.Process().children(recursive=True):
            try:
                if "chrom" not in process.name():
                    continue
                pss = process.memory_full_info().pss
                total += pss
                if "--type=renderer" in process.cmdline():
                    renderer = max(renderer, pss)
            except psutil.Error:
                continue
        now = (total / 2**20, renderer / 2**20)
        self.peak = max(self.peak, now[0])
        self.renderer_peak = max(self.renderer_peak, now[1])
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> _BrowserMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def figures(self, idle: tuple[float, float]) -> dict[str, float]:
        """The peaks, and the idle browser's figures they compare with."""
        return {
            "browser_mb_idle": round(idle[0], 1),
            "browser_mb_peak": round(self.peak, 1),
            "browser_mb_over_idle": round(self.peak - idle[0], 1),
            "page_renderer_mb_peak": round(self.renderer_peak, 1),
        }


class _EventWriter:
    """Writes ``per_s`` step events a second into ``run_id`` (straight through the store, as
    an engine would) from a thread, until stopped; keeps the rate whatever a write costs."""

    def __init__(self, home: Path, run_id: str, per_s: int, paths: int = 1000) -> None:
        import threading

        self.home, self.run_id, self.per_s, self.paths = home, run_id, per_s, paths
        self.written = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kaon.store.base import EventRecord, WriteBatch

        store = open_store(default_store_url(self.home))
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                due = int(self.per_s * (time.monotonic() - started)) - self.written
                batch = WriteBatch()
                for n in range(max(due, 0)):
                    index = (self.written + n) % self.paths
                    data = {"path": f"segments[{index}].train", "status": "running"}
                    batch.events.append(EventRecord(self.run_id, "step", time.time(), data))
                if batch:
                    store.write(batch)
                self.written += max(due, 0)
                self._stop.wait(0.02)
        finally:
            self.seconds = time.monotonic() - started
            store.close()

    def __enter__(self) -> _EventWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def rate(self) -> int:
        """Events written per second so far."""
        return round(self.written / self.seconds) if self.seconds else 0


_PROBE = """() => {
  window.kaonLag = []; window.kaonDelay = [];
  let last = performance.now();
  window.kaonProbe = setInterval(() => {
    const now = performance.now();
    window.kaonLag.push(now - last - 50);
    last = now;
  }, 50);
  // The input delay: from the press (its timestamp, taken when the browser received it) to
  // the first handler running on the page's main thread.
  window.addEventListener("pointerdown", (e) => kaonDelay.push(performance.now() - e.timeStamp),
    { capture: true });
  // Tasks that held the main thread over 50 ms (what an input arriving then would wait).
  window.kaonLong = [];
  window.kaonLongObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) kaonLong.push(entry.duration);
  });
  kaonLongObserver.observe({ type: "longtask" });
}"""


def _renderer_cpu_s() -> float:
    """CPU seconds used so far by the bench's Chromium renderer processes (the pages' work,
    whatever else runs on the machine)."""
    total = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name() and "--type=renderer" in process.cmdline():
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _p95(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)], 1) if ordered else None


def _responsiveness(page: Any, seconds: float, at: tuple[int, int]) -> dict[str, Any]:
    """Press the mouse at ``at`` (a spot with no action) every 200 ms for ``seconds`` while a
    50 ms timer runs on the page: the input delays and the timer's lateness."""
    page.evaluate(_PROBE)
    started, cpu = time.monotonic(), _renderer_cpu_s()
    while time.monotonic() - started < seconds:
        page.mouse.click(*at)
        time.sleep(0.2)
    cpu_share = (_renderer_cpu_s() - cpu) / (time.monotonic() - started)
    found = page.evaluate(
        "() => { clearInterval(window.kaonProbe); kaonLongObserver.disconnect();"
        " return [kaonDelay, kaonLag, kaonLong]; }"
    )
    delays, lags, long_tasks = found
    heap = page.evaluate("() => performance.memory.usedJSHeapSize")
    return {
        "inputs": len(delays),
        "input_delay_p95_ms": _p95(delays),
        "input_delay_max_ms": round(max(delays), 1) if delays else None,
        "timer_lag_p95_ms": _p95(lags),
        "timer_lag_max_ms": round(max(lags), 1) if lags else None,
        "renderer_cpu_pct": round(cpu_share * 100, 1),
        "long_tasks": len(long_tasks),
        "long_task_max_ms": round(max(long_tasks), 1) if long_tasks else None,
        "js_heap_mb": round(heap / 2**20, 1),
    }


def _times(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values)), "all": [round(v) for v in values]}


def _idle(browser: Any, memory: _BrowserMemory) -> tuple[float, float]:
    """The browser's memory with one blank page open (what Chromium holds by itself)."""
    blank = browser.new_page()
    blank.goto("about:blank")
    time.sleep(1.0)
    found = memory.sample()
    blank.close()
    memory.peak = memory.renderer_peak = 0.0  # the peaks count from the UI's first page
    return found


def _login(browser: Any, url: str, token: str, height: int) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(f"{url}/ui/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui")
    return page


def _spot(page: Any, selector: str) -> tuple[int, int]:
    """The middle of an element with no action (where the bench presses the mouse)."""
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)


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
        run_page = f"{url}/ui/runs/{run_id}"
        streamed: dict[str, Any] = {}
        try:
            with sync_playwright() as playwright, _BrowserMemory() as memory:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                idle = _idle(browser, memory)
                page = _login(browser, url, token, 820)
                paints = []
                for _ in range(repeat):
                    page.goto("about:blank")
                    paints.append(_timed(page, lambda: page.goto(run_page), READY))
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
                quiet_mb = memory.sample()
                if events_per_s > 0:
                    with _EventWriter(home, run_id, events_per_s) as writer:
                        time.sleep(1.0)  # the stream is under way before the page opens
                        busy = []
                        for _ in range(repeat):
                            page.goto("about:blank")
                            busy.append(_timed(page, lambda: page.goto(run_page), READY))
                        page.wait_for_selector("#live.on")  # following the event stream
                        found = _responsiveness(page, stream_s, _spot(page, "#run-facts"))
                    streamed = {
                        "events_per_s": writer.rate(),
                        "first_paint_ms": _times(busy),
                        **found,
                    }
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
        "first_paint_ms": _times(paints),
        "next_page_ms": round(next_page),
        "filter_ms": round(filter_ms),
        "js_heap_mb": round(heap / 2**20, 1),
        "browser_mb_quiet": round(quiet_mb[0], 1),
        "streaming": streamed,
        **memory.figures(idle),
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


def measure_history(
    runs: int, repeat: int, screenshot: str | None, events_per_s: int = 500, stream_s: float = 5.0
) -> dict[str, Any]:
    """A workflow with ``runs`` runs in its history: time its page in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir()
        process, url, token = _serve(home)
        streamed: dict[str, Any] = {}
        try:
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            pushed = client.post("/workflows", json={"source": HISTORY_FLOW, "file_name": "h.yaml"})
            pushed.raise_for_status()
            digest = client.get("/workflows/history/versions").json()[0]["definition_hash"]
            _write_history(home, digest, runs)
            client.close()
            with sync_playwright() as playwright, _BrowserMemory() as memory:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                idle = _idle(browser, memory)
                page = _login(browser, url, token, 900)
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
                if events_per_s > 0:
                    newest = f"hist-{runs - 1:06d}"
                    with _EventWriter(home, newest, events_per_s) as writer:
                        time.sleep(1.0)
                        busy = []
                        for _ in range(repeat):
                            page.goto("about:blank")
                            busy.append(_timed(page, lambda: page.goto(history), HISTORY_READY))
                        found = _responsiveness(page, stream_s, _spot(page, "#props"))
                    streamed = {
                        "events_per_s": writer.rate(),
                        "workflow_page_ms": _times(busy),
                        **found,
                    }
                if screenshot:
                    page.screenshot(path=screenshot, full_page=True)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "history_runs": runs,
        "workflows_page_ms": _times(listed),
        "workflow_page_ms": _times(opened),
        "filter_failed_ms": round(filter_ms),
        "older_page_ms": round(older_ms),
        "js_heap_mb": round(heap / 2**20, 1),
        "streaming": streamed,
        **memory.figures(idle),
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
        found = measure_history(
            args.history_runs, args.repeat, args.screenshot, args.events_per_s, args.stream_s
        )
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
