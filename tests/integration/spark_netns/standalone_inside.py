"""Runs inside the private network namespace made by
``tests/integration/test_spark_standalone.py``.

Brings loopback up, starts a standalone Spark master and one worker from the installed
pyspark's jars (``java -cp pyspark/jars/* org.apache.spark.deploy.master.Master``, as
``$SPARK_HOME/sbin/start-master.sh`` would, which the pip package does not ship), all bound to
127.0.0.1, runs a ``spark`` step against ``spark://127.0.0.1:7077`` through Kaon's step
runtime, checks that the master ran it, and kills every process of the namespace. Exits 0 when
the checks pass; prints what failed otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from kaon.artifacts import open_artifact_store
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import ExecutorEvent, LogLine, StepSucceeded

DATA = Path(__file__).resolve().parents[2] / "unit" / "steptypes" / "data"
MASTER = "spark://127.0.0.1:7077"
FAST_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]  # short-lived JVMs start faster


def _spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _java(main: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    home = _spark_home()
    command = ["java", *FAST_JVM, "-Xmx256m", "-cp", os.path.join(home, "jars", "*"), main, *args]
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1"}
    env["SPARK_SCALA_VERSION"] = "2.13"  # the worker's launcher cannot tell from a pip install
    handle = open(log, "wb")  # noqa: SIM115 - the daemon writes to it until killed
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{path.name} never said {text!r}:\n{path.read_text()[-3000:]}")


def _run_step(work: Path) -> list[ExecutorEvent]:
    store = open_artifact_store(str(work / "artifacts"))
    users = pd.DataFrame(
        {"name": ["ann", "bob", "cy"], "age": [34, 17, 51], "region": ["eu", "eu", "us"]}
    )
    request = TaskRequest(
        key=("run-1", 1, 1),
        step_path="by_region",
        step_type="spark",
        config={
            "file": "spark_jobs.py",
            "base_dir": str(DATA),
            "function": "users_by_region",
            "master": MASTER,
            "conf": {
                "spark.executor.memory": "512m",
                "spark.cores.max": "1",
                "spark.executor.extraJavaOptions": " ".join(FAST_JVM),
                "spark.driver.extraJavaOptions": " ".join(FAST_JVM),
            },
            "log_level": "INFO",
        },
        inputs={"users": store.put(users), "min_age": store.put(18)},
        params={},
        artifact_url=str(work / "artifacts"),
    )
    events: list[ExecutorEvent] = []
    run_task(request, events.append)
    done = events[-1]
    assert isinstance(done, StepSucceeded), done
    table = store.get(done.outputs["return"])
    assert table["n"].tolist() == [1, 1], table
    return events


def _kill_namespace() -> None:
    mine = os.readlink("/proc/self/ns/net")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in (os.getpid(), os.getppid()):
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{name}/ns/net") == mine:
                    os.kill(int(name), sig)
        time.sleep(0.3)


def main() -> int:
    """Start the cluster, run the step, check, clean up."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work = Path(tempfile.mkdtemp(prefix="kaon-spark-standalone-"))
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    try:
        master_log, worker_log = work / "master.log", work / "worker.log"
        _java(
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", "7077", "--webui-port", "18080",
            log=master_log,
        )  # fmt: skip
        _wait_port(7077, 60)
        _java(
            "org.apache.spark.deploy.worker.Worker",
            "--host", "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", "18081",
            "--work-dir", str(work / "worker"), MASTER,
            log=worker_log,
        )  # fmt: skip
        _wait_for(master_log, "Registering worker", 60)
        events = _run_step(work)
        logs = "\n".join(e.text for e in events if isinstance(e, LogLine))
        assert f"master {MASTER}" in logs, logs[-3000:]
        # The master gave the application an executor on the worker, which ran the job.
        _wait_for(master_log, "Launching executor", 10)
        _wait_for(worker_log, "Asked to launch executor", 10)
        print("spark standalone: ok")
        shutil.rmtree(work, ignore_errors=True)  # kept when a check failed, for its logs
        return 0
    except (AssertionError, TimeoutError) as exc:
        print(f"spark standalone: {type(exc).__name__}: {exc}")
        for log in sorted(work.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return 1
    finally:
        from kaon.steptypes.spark import stop_session

        with contextlib.suppress(Exception):
            stop_session()
        _kill_namespace()


if __name__ == "__main__":
    sys.exit(main())
