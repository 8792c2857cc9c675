"""A step that closes or redirects file descriptors 1 and 2 of its process worker must not
take the logs of the steps that run after it on that warm worker (README: "A step's log is
everything it writes: ... on the process executor, what its child processes and C code write
to file descriptors 1 and 2")."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_sink import Sink

from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import LogLine, StepSucceeded

STEPS = """
import os, subprocess

def close_fds():
    os.close(1)
    os.close(2)
    return "closed"

def to_devnull():
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return "devnull"

def victim(path):
    rc = subprocess.run(["sh", "-c", "echo child-out; echo child-err >&2"]).returncode
    with open(path, "w") as handle:  # must not become the worker's fd 1
        os.write(1, b"fd-write\\n")
        number = handle.fileno()
    return {"rc": rc, "fileno": number}
"""


def _request(number: int, module: Path, function: str, **inputs: object) -> TaskRequest:
    from kaon.model.values import Literal

    return TaskRequest(
        ("r", number, 1),
        f"s{number}",
        "python",
        {"file": str(module), "function": function},
        {name: Literal(value) for name, value in inputs.items()},
        {},
        "memory://kaon-probe-fds",
    )


@pytest.mark.parametrize("breaker", ["close_fds", "to_devnull"])
def test_a_later_step_still_gets_its_child_output(tmp_path: Path, breaker: str) -> None:
    module = tmp_path / "fd_steps.py"
    module.write_text(STEPS)
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(_request(1, module, breaker))
        sink.wait(lambda e: isinstance(e, StepSucceeded) and e.key[1] == 1)
        executor.submit(_request(2, module, "victim", path=str(tmp_path / "user-file.txt")))
        sink.wait(lambda e: isinstance(e, StepSucceeded) and e.key[1] == 2)
    finally:
        executor.shutdown()
    lines = [e.text for e in sink.events if isinstance(e, LogLine) and e.key[1] == 2]
    assert "child-out" in lines and "child-err" in lines and "fd-write" in lines, lines
    assert (tmp_path / "user-file.txt").read_text() == ""  # nothing of the log went there
