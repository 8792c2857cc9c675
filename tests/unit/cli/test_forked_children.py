"""A process a step forks on the inline executor (``os.fork``, multiprocessing's ``fork``
start method) is a copy of the engine's process: it must not keep the engine's SIGINT and
SIGTERM handlers. With them, SIGTERM asked the child's copy of the engine to stop (a child
that is no engine) and left the child running: ``Process.terminate()`` and
``Pool.terminate()`` no longer ended it."""

from __future__ import annotations

import textwrap
from pathlib import Path

FLOW = textwrap.dedent(
    """\
    import os, signal, threading, time

    import kaon


    def _forked_child_status():
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(3)
            finally:
                os._exit(0)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


    @kaon.step
    def fork_and_terminate() -> int:
        code = _forked_child_status()
        print(f"forked child ended with {code}")
        if code != -signal.SIGTERM:
            raise RuntimeError(f"the forked child survived SIGTERM: exit {code}")
        return code


    @kaon.workflow
    def forking() -> None:
        fork_and_terminate()
    """
)


def test_sigterm_ends_a_child_a_step_forked_on_the_inline_executor(  # type: ignore[no-untyped-def]
    kaon, tmp_path: Path
) -> None:
    flow = tmp_path / "forking.py"
    flow.write_text(FLOW)
    code, out, err = kaon("run", f"{flow}:forking", "--executor", "inline")
    assert code == 0, out + err
