"""API run-start throughput: POST /runs per second against a real ``kaon server``.

Starts ``kaon server`` (inline executor, temp home) on a free loopback port, pushes a one-step
workflow, then sends ``--runs`` run starts from ``--clients`` concurrent keep-alive HTTP
clients and reports starts per second (the API only records each pending run; the server's
engine claims and runs them meanwhile). Prints one JSON line.

    python bench/api_bench.py --runs 2000 --clients 8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

FLOW = "name: tiny\nsteps:\n  - id: a\n    shell: 'true'\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(home: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    kaon = str(Path(sys.executable).parent / "kaon")
    command = [kaon, "server", "--home", str(home), "--port", str(port)]
    command += ["--executor", "inline", "--bootstrap-token", "bench"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    token = process.stdout.readline().rsplit(": ", 1)[-1].strip()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, token
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("kaon server did not start")


def _client(url: str, token: str, count: int, latencies: list[float], errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(count):
            began = time.perf_counter()
            answer = client.post("/runs", json={"workflow": "tiny"})
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 201:
                errors.append(f"{answer.status_code}: {answer.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaon-api-bench-") as home:
        port = _free_port()
        process, token = _start(Path(home), port)
        url = f"http://127.0.0.1:{port}"
        try:
            headers = {"Authorization": f"Bearer {token}"}
            pushed = httpx.post(
                f"{url}/workflows",
                json={"source": FLOW, "file_name": "tiny.yaml"},
                headers=headers,
            )
            pushed.raise_for_status()
            latencies: list[float] = []
            errors: list[str] = []
            per_client = args.runs // args.clients
            threads = [
                threading.Thread(target=_client, args=(url, token, per_client, latencies, errors))
                for _ in range(args.clients)
            ]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            latencies.sort()
            total = per_client * args.clients
            print(
                json.dumps(
                    {
                        "benchmark": "api_run_starts",
                        "runs": total,
                        "clients": args.clients,
                        "wall_s": round(wall, 3),
                        "starts_per_s": round(total / wall, 1),
                        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
                        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
                        "errors": len(errors),
                        "first_error": errors[0] if errors else None,
                        "cores": os.cpu_count(),
                    }
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
