"""Scale: one ``kaon server`` with thousands of cron workflows and a thousand held runs.

Registers ``--workflows`` active workflows (default 5,000), each a one-step no-op with a cron
trigger: workflow ``i`` fires at second ``i % 60`` of every ``--every``-th minute (offset
by ``i // 60``), so runs are due all the time, ``workflows / (60 * every)`` per second. It
also creates ``--held`` runs (default 1,000) of a workflow whose step waits for a signal that
never comes: the engine holds them all, polling their commands and signals every turn. Then it
starts a real ``kaon server`` (process executor) on the store and measures, for ``--seconds``:

* trigger lag: from a cron slot's due time to its run being created, and to it starting,
  once the server is warm (every held run claimed, a first cron run created); the slots due
  while it warmed up (its first pass reads every workflow and trigger state) are reported
  apart, as ``warmup_s`` and ``warmup_lag_max_s``;
* engine turn time: ``kaon_engine_turn_seconds`` from ``/metrics`` (turns that did work);
* ``/metrics`` latency, scraped every second by a client;
* command polling: the engine's query for pending commands with every held run, against
  the same query with 10 of them (its cost must not follow the number of runs);
* the server's peak RSS.

    python bench/scale_bench.py [--workflows 5000] [--held 1000] [--seconds 60] [--store pg]

Prints a human summary and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from kaon.engine.operations import create_run
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.specs import GraphSpec, TaskSpec, WaitSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec
from kaon.store import open_store
from kaon.store.base import DefinitionRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.sql import SQLStore

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
KAON = str(Path(sys.executable).parent / "kaon")


def cron_workflow(index: int, every: int) -> WorkflowSpec:
    """Workflow ``index``: a no-op step, due at second ``index % 60`` of every
    ``every``-th minute, offset by ``index // 60`` minutes."""
    step = TaskSpec(id="noop", config={"file": str(HERE / "noop_steps.py"), "function": "noop"})
    minute = (index // 60) % every
    cron = f"{minute}/{every} * * * * {index % 60}"
    return WorkflowSpec(
        name=f"cron{index}", graph=GraphSpec(steps=(step,)), triggers=(CronTriggerSpec(cron=cron),)
    )


def held_workflow() -> WorkflowSpec:
    """A run of it is held by the engine until killed: it waits for a signal never sent."""
    return WorkflowSpec(name="held", graph=GraphSpec(steps=(WaitSpec(id="w", signal="never"),)))


def register(store: SQLStore, specs: list[WorkflowSpec]) -> None:
    """Register and activate each spec as a version, as a push does after validation."""
    registry = SQLRegistryStore(store)
    now = time.time()
    records = [DefinitionRecord(spec_hash(s), s.name, workflow_to_dict(s), "", now) for s in specs]
    for start in range(0, len(records), 500):
        store.write(WriteBatch(definitions=records[start : start + 500]))
    for record in records:
        version = VersionRecord(record.name, 0, record.hash, "", "bench", now, "bench")
        registry.add_version(version, activate=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(home: Path, url: str, max_runs: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """A ``kaon server`` on the store; returns it, its URL and an admin token."""
    port = _free_port()
    env = {**os.environ, "KAON_DB": url, "KAON_ARTIFACTS": str(home / "artifacts")}
    log = (home / "server.log").open("wb")
    command = [KAON, "server", "--home", str(home), "--port", str(port)]
    command += ["--bootstrap-token", "bench", "--max-runs", str(max_runs), "--sandbox", "off"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((home / "server.log").read_text())
        found = re.search(r"\(shown once\): (\S+)", (home / "server.log").read_text())
        with contextlib.suppress(httpx.TransportError):
            if found and httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base, found.group(1)
        time.sleep(0.2)
    raise SystemExit("the server did not start within 120 s")


def turn_p95(metrics: str) -> float:
    """The smallest bucket bound under which 95% of engine turns fall."""
    buckets = [
        (float(le), float(n))
        for le, n in re.findall(r'kaon_engine_turn_seconds_bucket\{le="([^"]+)"\} (\S+)', metrics)
    ]
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= 0.95 * total:
            return bound
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def polling_ms(store: SQLStore, run_ids: list[str]) -> float:
    """Median time of the engine's pending-command query over ``run_ids``."""
    times = []
    for _ in range(20):
        began = time.perf_counter()
        store.pending_commands_of(run_ids)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(url: str, home: Path, args: argparse.Namespace) -> dict[str, object]:
    store = open_store(url)
    assert isinstance(store, SQLStore)
    began = time.monotonic()
    held_spec = held_workflow()
    register(store, [cron_workflow(i, args.every) for i in range(args.workflows)] + [held_spec])
    held = [create_run(store, held_spec, {}).id for _ in range(args.held)]
    registered_s = time.monotonic() - began
    server_started = time.time()
    process, base, token = start_server(home, url, max_runs=args.held + 500)
    headers = {"Authorization": f"Bearer {token}"}
    rss: list[float] = []
    scrapes: list[float] = []
    health: list[float] = []
    # One client, kept open as Prometheus keeps its connection: a new httpx client per
    # request costs tens of milliseconds on the client's side (its TLS context).
    client = httpx.Client(timeout=30)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # warm: every held run claimed, a cron run made
            running = store.list_runs(workflow="held", statuses=[RunStatus.RUNNING], limit=100_000)
            fired = [r for r in store.list_runs(limit=50) if r.workflow != "held"]
            if len(running) >= args.held and fired:
                break
            time.sleep(0.5)
        window_start = time.time()
        end = time.monotonic() + args.seconds
        metrics = ""
        while time.monotonic() < end:
            tick = time.perf_counter()
            metrics = client.get(f"{base}/metrics", headers=headers).text
            scrapes.append((time.perf_counter() - tick) * 1000)
            probe = time.perf_counter()
            client.get(f"{base}/healthz")
            health.append((time.perf_counter() - probe) * 1000)
            root = psutil.Process(process.pid)  # the API's process and the parts' ones
            tree = [root, *(c for c in root.children() if c.name() != "bwrap")]
            rss.append(sum(p.memory_info().rss for p in tree) / 2**20)
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
        window_end = time.time()
        poll_all = polling_ms(store, held)
        poll_few = polling_ms(store, held[:10])
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    created, started, warming = [], [], []
    for run in store.list_runs(limit=1_000_000):
        slot = run.labels.get("slot") if run.labels else None
        if not slot or run.workflow == "held":
            continue
        due = datetime.fromisoformat(str(slot)).timestamp()
        if server_started <= due < window_start:
            warming.append(run.created_at - due)
        if not window_start <= due <= window_end - 2:
            continue
        created.append(run.created_at - due)
        if run.started_at is not None:
            started.append(run.started_at - due)
    store.close()
    return {
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "workflows": args.workflows,
        "held_runs": args.held,
        "seconds": args.seconds,
        "registered_s": round(registered_s, 1),
        "cron_runs": len(created),
        "trigger_lag_p50_s": round(percentile(created, 0.5), 3),
        "trigger_lag_p95_s": round(percentile(created, 0.95), 3),
        "trigger_lag_max_s": round(max(created, default=float("nan")), 3),
        "start_lag_p95_s": round(percentile(started, 0.95), 3),
        "warmup_s": round(window_start - server_started, 1),
        "warmup_lag_max_s": round(max(warming, default=float("nan")), 3),
        "not_started": len(created) - len(started),
        "engine_turn_p95_s": turn_p95(metrics),
        "metrics_p50_ms": round(percentile(scrapes, 0.5), 1),
        "metrics_p95_ms": round(percentile(scrapes, 0.95), 1),
        "healthz_p50_ms": round(percentile(health, 0.5), 1),
        "healthz_p95_ms": round(percentile(health, 0.95), 1),
        "command_poll_ms_all_held": round(poll_all, 2),
        "command_poll_ms_10_held": round(poll_few, 2),
        "server_peak_rss_mb": round(max(rss, default=0.0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=5000)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=int, default=5, help="minutes between a cron's runs")
    parser.add_argument("--store", default="sqlite", help="sqlite, pg, or a database URL")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kaon-scale-"))
    try:
        if args.store == "pg":
            from pg_cluster import pg_cluster

            with pg_cluster() as url:
                result = measure(url, home, args)
        else:
            url = args.store if "://" in args.store else f"sqlite:///{home / 'kaon.db'}"
            result = measure(url, home, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
