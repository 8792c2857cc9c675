"""The child side of :mod:`kaon.service.push_sandbox`: evaluate one pushed workflow file, or
fingerprint one step's code.

Run as ``python -m kaon.service._evaluate`` with a JSON request on stdin (one line; the
parent then keeps the pipe open, and the child ends itself if the pipe closes first)::

    {"target": "<file>[:<workflow>]", "result": "<path>", "memory_bytes": N, "cpu_s": N,
     "file_bytes": N}

It lowers its own resource limits first (before any user code is imported), loads the
workflow, and writes ``{"spec": ...}`` or ``{"problems": [...]}`` to ``result``. A request
with ``"fingerprints": [{"step_type": ..., "config": ...}, ...]`` instead of a target gets
the step types' code fingerprints of those configurations (importing the steps' modules, as a
fingerprint does; a module shared by several is imported once): ``{"fingerprints": [...]}``,
each ``{"fingerprint": ...}`` (see :func:`fingerprint_to_dict`) or ``{"error": "..."}``.
It ends with ``os._exit`` so that nothing the user's code registered (``atexit``) runs after
the result. Whatever the user's code does (exit, raise ``KeyboardInterrupt``, loop,
allocate), only this process suffers.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
from typing import Any


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _problems(exc: BaseException) -> list[dict[str, Any]]:
    from kaon.errors import DefinitionError

    if isinstance(exc, DefinitionError):
        return [
            {
                "message": p.message,
                "file": p.location.file,
                "line": p.location.line,
                "field": p.location.field,
            }
            for p in exc.problems
        ]
    text = f"evaluating the file raised {type(exc).__name__}: {exc}"
    return [{"message": text[:2000], "file": None, "line": None, "field": None}]


def _end_with_parent() -> None:
    """End this process's group when stdin closes: the parent keeps the pipe open until it
    has reaped this process, so a closed pipe means it died (a server killed with ``-9``)
    and nothing else will end this child, which runs in a session of its own. The user's
    code sees ``/dev/null`` as stdin, never this pipe."""
    watched = os.dup(0)
    quiet = os.open(os.devnull, os.O_RDONLY)
    os.dup2(quiet, 0)
    os.close(quiet)

    def watch() -> None:
        while True:
            try:
                if not os.read(watched, 4096):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="kaon-parent-watch", daemon=True).start()


def main() -> None:
    """Evaluate the request (a line on stdin); the answer goes to the file it names."""
    line = sys.stdin.buffer.readline()
    if not line.endswith(b"\n"):
        os._exit(1)  # the parent died before it sent the whole request
    request = json.loads(line)
    _end_with_parent()
    _limit(resource.RLIMIT_AS, int(request["memory_bytes"]))
    _limit(resource.RLIMIT_CPU, int(request["cpu_s"]))
    _limit(resource.RLIMIT_FSIZE, int(request["file_bytes"]))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)
    if "fingerprints" in request:
        text = json.dumps({"fingerprints": [_fingerprint(w) for w in request["fingerprints"]]})
    else:
        text = _evaluate(str(request["target"]))
    partial = f"{request['result']}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, request["result"])
    sys.stdout.flush()
    os._exit(0)


def _evaluate(target: str) -> str:
    try:
        from kaon.dsl.loader import load_workflow
        from kaon.model.codec import workflow_to_dict

        return json.dumps({"spec": workflow_to_dict(load_workflow(target))})
    except BaseException as exc:
        return json.dumps({"problems": _problems(exc)})


def _fingerprint(work: dict[str, Any]) -> dict[str, Any]:
    try:
        from kaon.steptypes.registry import get_step_type

        code = get_step_type(str(work["step_type"])).fingerprint(work["config"])
        return {"fingerprint": fingerprint_to_dict(code)}
    except BaseException as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}


def fingerprint_to_dict(code: Any) -> dict[str, Any]:
    """A step type's fingerprint (a text or a CodeFingerprint) as JSON."""
    if isinstance(code, str):
        return {"text": code}
    return {
        "digest": code.digest,
        "parts": dict(code.parts),
        "not_covered": list(code.not_covered),
        "config": code.config,
        "context_reads": list(code.context_reads),
    }


if __name__ == "__main__":
    main()
