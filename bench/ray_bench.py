"""A foreach sweep on Ray: Kaon's ``ray`` executor against raw Ray tasks doing the same work,
and against Kaon's ``process`` executor.

    python bench/ray_bench.py                    # 2,000 items, one-node cluster
    python bench/ray_bench.py --items 30000 --nodes 2

The sweep is a foreach of N no-op items (``bench/noop_steps.py``) between a source and a join,
every transition committed to a SQLite (WAL) store, as in production. "raw Ray" submits N tasks
calling the same no-op function and waits for them all. Kaon's overhead per item on Ray is
(Kaon's wall time - raw Ray's) / N. Each measurement runs in its own process, so the peak RSS
reported is that process's (the engine's, or the raw driver's).

This machine may only talk to itself and Ray binds every interface, so the script re-runs
itself inside a new network namespace with only loopback (``unshare --net``, as root), starts a
Ray head there (and ``--nodes 2``: a second node, as ``ray start --address``), measures, and
kills every process of the namespace. Prints one JSON line per measurement and a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = str(HERE / "noop_steps.py")
BIN = Path(sys.executable).parent
PORT = 6479
WARM_ITEMS = 200


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _supervisor_cpu_s() -> float:
    """CPU seconds of Kaon's supervisor actor so far (0 when there is none)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "Supervisor" in " ".join(proc.info["cmdline"] or []):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_raw(address: str, items: int) -> dict[str, object]:
    """N Ray tasks calling the no-op step function; after a warm-up round."""
    import ray

    sys.path.insert(0, str(HERE))
    from noop_steps import noop

    ray.init(address=address, log_to_driver=False)
    work = ray.remote(noop)
    ray.get([work.remote(i) for i in range(WARM_ITEMS)])
    cpu = _cpu_s()
    started = time.perf_counter()
    ray.get([work.remote(i) for i in range(items)])
    wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu
    return {
        "mode": "raw ray",
        "items": items,
        "wall_s": round(wall, 3),
        "rss_mb": _rss_mb(),
        "engine_cpu_s": round(cpu, 2),
    }


def _sweep(items: int) -> object:
    from kaon.model.specs import Expr, ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec

    def task(step_id: str, function: str, **kwargs: object) -> TaskSpec:
        return TaskSpec(id=step_id, config={"file": STEPS, "function": function}, **kwargs)  # type: ignore[arg-type]

    steps = (
        task("src", "items", inputs={"n": Expr(str(items))}),
        ForeachSpec(
            id="each", items=Expr("steps.src"), body=GraphSpec(steps=(task("work", "noop"),))
        ),
        task("join", "count", inputs={"values": Expr("steps.each")}),
    )
    return WorkflowSpec(name=f"sweep{items}", graph=GraphSpec(steps=steps))


def measure_kaon(
    executor_name: str, address: str, items: int, workers: int | None
) -> dict[str, object]:
    """The foreach sweep through Kaon's engine on ``executor_name``; after a warm-up run."""
    from kaon.artifacts import open_artifact_store
    from kaon.engine.engine import Engine
    from kaon.engine.operations import create_run
    from kaon.executors import create_executor
    from kaon.model.status import RunStatus
    from kaon.store import open_store

    home = Path(tempfile.mkdtemp(prefix="kaon-ray-bench-"))
    try:
        store = open_store(f"sqlite:///{home / 'kaon.db'}")
        artifacts = open_artifact_store(str(home / "artifacts"))
        options: dict[str, object] = {"workers": workers} if workers else {}
        if executor_name == "ray":
            options["address"] = address
        executor = create_executor(executor_name, **options)
        engine = Engine(store, executor, artifacts)
        engine.start()
        warm = create_run(store, _sweep(WARM_ITEMS), {})  # type: ignore[arg-type]
        assert engine.run_until_done(warm.id) is RunStatus.SUCCEEDED
        run = create_run(store, _sweep(items), {})  # type: ignore[arg-type]
        cpu, actor_cpu = _cpu_s(), _supervisor_cpu_s()
        started = time.perf_counter()
        status = engine.run_until_done(run.id)
        wall = time.perf_counter() - started
        cpu, actor_cpu = _cpu_s() - cpu, _supervisor_cpu_s() - actor_cpu
        engine.close()
        assert status is RunStatus.SUCCEEDED, store.get_run(run.id).error
        store.close()
        return {
            "mode": f"kaon {executor_name}",
            "items": items,
            "workers": executor.capacity,
            "wall_s": round(wall, 3),
            "rss_mb": _rss_mb(),
            "engine_cpu_s": round(cpu, 2),
            "supervisor_cpu_s": round(actor_cpu, 2),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _namespace_pids() -> list[int]:
    mine = os.readlink("/proc/self/ns/net")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (os.getpid(), os.getppid()):
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{name}/ns/net") == mine:
                found.append(int(name))
    return found


def _kill_namespace() -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _namespace_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.5)


def _start_cluster(nodes: int, cpus: int) -> str:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="kaon-ray-bench-")
    common = ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--disable-usage-stats"]
    head = [str(BIN / "ray"), "start", "--head", f"--port={PORT}", "--include-dashboard=false"]
    subprocess.run([*head, *common, f"--temp-dir={temp}"], env=env, check=True, capture_output=True)
    address = f"127.0.0.1:{PORT}"
    for _ in range(nodes - 1):
        more = [str(BIN / "ray"), "start", f"--address={address}", *common]
        subprocess.run(more, env=env, check=True, capture_output=True)
    return address


def inside(args: argparse.Namespace) -> int:
    """In the namespace: start the cluster, run each measurement in its own process."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rows = []
    try:
        address = _start_cluster(args.nodes, args.cpus)
        for mode in args.modes.split(","):
            command = [sys.executable, __file__, "--measure", mode, "--address", address]
            command += ["--items", str(args.items)]
            if args.workers:
                command += ["--workers", str(args.workers)]
            env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                sys.stderr.write(done.stdout + done.stderr)
                return 1
            print(lines[-1], flush=True)
            rows.append(json.loads(lines[-1]))
    finally:
        _kill_namespace()
    _table(rows, args)
    return 0


def _table(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    raw = next((r for r in rows if r["mode"] == "raw ray"), None)
    print(
        f"\n{args.items:,} items, {args.nodes} node(s) x {args.cpus} CPUs, {os.cpu_count()} cores"
    )
    print(
        "| mode | wall (s) | per item (ms) | above raw Ray (ms/item) | engine or driver CPU "
        "(ms/item) | supervisor CPU (ms/item) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        wall = float(row["wall_s"])  # type: ignore[arg-type]
        per_item = wall / args.items * 1000
        above = (
            ""
            if raw is None or row is raw
            else f"{(wall - float(raw['wall_s'])) / args.items * 1000:.3f}"
        )  # type: ignore[arg-type]
        cpu = float(row["engine_cpu_s"]) / args.items * 1000  # type: ignore[arg-type]
        actor = float(row.get("supervisor_cpu_s", 0.0)) / args.items * 1000  # type: ignore[arg-type]
        print(
            f"| {row['mode']} | {wall:.2f} | {per_item:.3f} | {above} | {cpu:.3f} | "
            f"{actor:.3f} | {row['rss_mb']} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items", type=int, default=2000, help="foreach items (30000 for the full sweep)"
    )
    parser.add_argument("--nodes", type=int, default=1, help="Ray nodes (2: head + one more)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs each node offers")
    parser.add_argument("--workers", type=int, default=None, help="Kaon executors' capacity")
    parser.add_argument("--modes", default="raw,ray,process", help="what to measure, in order")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        if args.measure == "raw":
            result = measure_raw(args.address, args.items)
        else:
            result = measure_kaon(args.measure, args.address, args.items, args.workers)
        print(json.dumps(result), flush=True)
        return 0
    if args.inside:
        return inside(args)
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        sys.stderr.write("needs root and unshare: Ray runs in a loopback-only namespace\n")
        return 2
    return subprocess.run(
        [unshare, "--net", "--fork", sys.executable, __file__, "--inside", *sys.argv[1:]],
        check=False,
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
