"""The child side of :mod:`kaon.service.push_sandbox`: evaluate one pushed workflow file.

Run as ``python -m kaon.service._evaluate`` with a JSON request on stdin::

    {"target": "<file>[:<workflow>]", "result": "<path>", "memory_bytes": N, "cpu_s": N,
     "file_bytes": N}

It lowers its own resource limits first (before any user code is imported), loads the
workflow, and writes ``{"spec": ...}`` or ``{"problems": [...]}`` to ``result``. It ends with
``os._exit`` so that nothing the user's code registered (``atexit``) runs after the result.
Whatever the user's code does (exit, raise ``KeyboardInterrupt``, loop, allocate), only this
process suffers.
"""

from __future__ import annotations

import json
import os
import resource
import sys
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


def main() -> None:
    """Evaluate the request on stdin; the answer goes to the file it names."""
    request = json.loads(sys.stdin.read())
    _limit(resource.RLIMIT_AS, int(request["memory_bytes"]))
    _limit(resource.RLIMIT_CPU, int(request["cpu_s"]))
    _limit(resource.RLIMIT_FSIZE, int(request["file_bytes"]))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)
    answer: dict[str, Any]
    try:
        from kaon.dsl.loader import load_workflow
        from kaon.model.codec import workflow_to_dict

        answer = {"spec": workflow_to_dict(load_workflow(str(request["target"])))}
        text = json.dumps(answer)
    except BaseException as exc:
        text = json.dumps({"problems": _problems(exc)})
    partial = f"{request['result']}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, request["result"])
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
