"""Evaluating a pushed workflow file: after authorization, never in the API's process.

A Python workflow file runs code when it is imported. The server therefore

1. reads the workflow names the file declares *without running it* (:func:`declared_names`:
   the YAML ``name``, or the ``@workflow`` decorators found by parsing the Python source),
   so that a push to another group's workflow is refused before any of its code runs;
2. evaluates the file in a child process (:func:`evaluate`): a fresh interpreter started
   with an empty environment (none of the server's variables or secrets), a scratch
   working folder, no inherited file descriptors, its own session, and resource limits on
   address space, CPU time, file size and open files; a wall-clock timeout kills it. The
   child answers with the workflow's spec as JSON; whatever the file does (``os._exit``,
   ``KeyboardInterrupt``, an endless loop, a huge allocation) ends that child only and
   becomes a 422 naming the pushed file.

Limits come from :class:`SandboxLimits` (``KAON_PUSH_TIMEOUT_S``, ``KAON_PUSH_MEMORY_MB``).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

import kaon
from kaon.errors import ConfigurationError, DefinitionError, Location, Problem
from kaon.executors.sandbox import SandboxSpec
from kaon.model.codec import workflow_from_dict
from kaon.model.specs import WorkflowSpec


def _env_int(name: str, default: int) -> int:
    """A positive whole number from variable ``name`` (unset or blank: ``default``).

    Raises :class:`ConfigurationError` naming the variable for any other value (it was
    silently the default, and ``0`` a limit every push failed)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) <= 10_000_000:
        raise ConfigurationError(f"{name}={text!r:.40}: expected a whole number from 1 to 10000000")
    return int(text)


@dataclass(frozen=True)
class SandboxLimits:
    """What one evaluation of a pushed file may use."""

    timeout_s: float = field(default_factory=lambda: float(_env_int("KAON_PUSH_TIMEOUT_S", 60)))
    memory_bytes: int = field(
        default_factory=lambda: _env_int("KAON_PUSH_MEMORY_MB", 2048) * 1024 * 1024
    )
    file_bytes: int = 64 * 1024 * 1024
    isolation: SandboxSpec | None = None  # the server's step sandbox: the evaluation runs in it


def declared_names(source: str, file_name: str) -> set[str] | None:
    """The workflow names ``source`` declares, read without running it.

    ``None`` when they cannot be known statically (a computed name, a syntax error: the
    evaluation will say what is wrong)."""
    if file_name.endswith((".yaml", ".yml")):
        try:
            name = _yaml_name(source)
        except (yaml.YAMLError, RecursionError, MemoryError):
            return None
        return {name} if name is not None else None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            found = _workflow_name(decorator, node.name)
            if found is False:
                return None
            if isinstance(found, str):
                names.add(found)
    return names


_STR = "tag:yaml.org,2002:str"
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_name(source: str) -> str | None:
    """The top-level ``name`` of a YAML document, as loading it would give it (the last
    one given, if a text), read from the parser's events: no document is built, so a file
    nested deep or made of aliases costs one pass over its text, in this process too. None
    when it is not a plain text, or the file is not one mapping."""
    depth = 0
    documents = 0
    key_next = False  # at the top level, the next event starts a key
    naming = False  # the key just read is ``name``
    name: str | None = None
    resolve = cast("Callable[..., str]", yaml.resolver.Resolver().resolve)  # untyped in stubs
    for event in yaml.parse(source, Loader=_PARSER):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                return None  # more than one document: no load reads it
        elif isinstance(event, yaml.CollectionStartEvent):
            if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                return None
            if depth == 1 and key_next:
                return None  # a collection as a key: no load reads it
            if depth == 1 and naming:
                name, naming = None, False
            depth += 1
            key_next = depth == 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            key_next = depth == 1  # a value at the top level ended
        elif depth == 1 and isinstance(event, yaml.NodeEvent):
            text = _plain_text(event, resolve)
            if key_next:
                naming = text == "name"
            elif naming:
                name, naming = text, False
            key_next = not key_next
    return name


def _plain_text(event: yaml.NodeEvent, resolve: Callable[..., str]) -> str | None:
    """The text a scalar event loads as (None: an alias, or a scalar that is no text)."""
    if not isinstance(event, yaml.ScalarEvent):
        return None
    tag = event.tag
    if tag is None or tag == "!":
        tag = resolve(yaml.ScalarNode, event.value, event.implicit)
    return event.value if tag == _STR else None


def _workflow_name(decorator: ast.expr, function: str) -> str | bool | None:
    """The name a decorator gives a workflow; None: not ``@workflow``; False: unknown."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call else decorator
    dotted = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    if dotted != "workflow":
        return None
    if call is None:
        return function
    for keyword in call.keywords:
        if keyword.arg is None:
            return False
        if keyword.arg == "name":
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return False
    return function


def evaluate(target: str, shown_as: str, limits: SandboxLimits | None = None) -> WorkflowSpec:
    """The workflow ``target`` (``FILE[:NAME]``) defines, evaluated in a sandboxed child.

    ``shown_as`` replaces the file's server path in every message. Raises DefinitionError
    (the file's problems, or how its evaluation ended)."""
    limits = limits or SandboxLimits()
    folder = str(Path(target.rsplit(":", 1)[0] if ":" in target else target).parent)
    answer = run_child({"target": target}, limits, shown_as, visible=(folder,))
    if "spec" in answer:
        return workflow_from_dict(answer["spec"])
    problems = [
        Problem(
            _scrub(str(p.get("message", "")), folder, shown_as),
            Location(
                shown_as if p.get("file") else None,
                p.get("line") if isinstance(p.get("line"), int) else None,
                p.get("field") if isinstance(p.get("field"), str) else None,
            ),
        )
        for p in answer.get("problems", [])
        if isinstance(p, dict)
    ]
    raise DefinitionError(problems or [Problem("evaluation failed", Location(shown_as))])


def run_child(
    work: dict[str, Any],
    limits: SandboxLimits,
    shown_as: str,
    *,
    visible: tuple[str, ...],
    cwd: str | None = None,
) -> dict[str, Any]:
    """Run ``python -m kaon.service._evaluate`` on the request ``work`` in a fresh child
    (empty environment, resource limits, a scratch folder; under ``limits.isolation`` when
    set, seeing only ``visible`` (read-only) beyond the machine's files) and return its
    answer. ``cwd`` is its working folder (default: the scratch folder). Raises
    DefinitionError (at ``shown_as``) when the child times out or ends without one."""
    scratch = tempfile.mkdtemp(prefix="kaon-push-")
    try:
        return _run_child(work, scratch, limits, shown_as, visible, cwd)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_child(
    work: dict[str, Any],
    scratch: str,
    limits: SandboxLimits,
    shown_as: str,
    visible: tuple[str, ...],
    cwd: str | None,
) -> dict[str, Any]:
    result = os.path.join(scratch, "result.json")
    request = {
        **work,
        "result": result,
        "memory_bytes": limits.memory_bytes,
        # A backstop past the wall-clock limit: equal to it, the kernel's SIGKILL at the CPU
        # limit raced the wall-clock wait, and a busy loop was "killed by signal 9" (which
        # names no limit) instead of "took longer than Ns" (a quiet machine: CPU time = wall).
        "cpu_s": int(limits.timeout_s) + 2,
        "file_bytes": limits.file_bytes,
    }
    env = {
        "PATH": os.defpath,
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(Path(kaon.__file__).resolve().parent.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",  # numerical libraries imported at load need no thread pools
        "OPENBLAS_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "kaon.service._evaluate"]
    if limits.isolation is not None:
        command = _isolated(limits.isolation, command, visible, scratch, env, cwd)
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd or scratch,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    where = Location(shown_as)
    assert child.stdin is not None
    try:
        # The request is one line; the pipe then stays open until the child has been
        # reaped. The child ends itself (and whatever it started) when the pipe closes
        # without that: this process died (kill -9), and its session no longer bounds it.
        with contextlib.suppress(BrokenPipeError):  # it ended at once: said below
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
        child.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        _kill(child)
        raise DefinitionError(
            Problem(f"evaluating the file took longer than {limits.timeout_s:g}s", where)
        ) from None
    finally:
        _kill(child)
        with contextlib.suppress(OSError):
            child.stdin.close()
    try:
        with open(result, encoding="utf-8") as answer:
            found = json.load(answer)
    except (OSError, ValueError):
        found = None
    if child.returncode != 0 or not isinstance(found, dict):
        code = child.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise DefinitionError(
            Problem(f"evaluating the file {how} before defining a workflow", where)
        )
    return found


def _isolated(
    sandbox: SandboxSpec,
    command: list[str],
    visible: tuple[str, ...],
    scratch: str,
    env: dict[str, str],
    cwd: str | None,
) -> list[str]:
    """``command`` under the server's step sandbox: pushed code runs where its steps will,
    with the server's home, its database and every other process hidden (``/proc`` of a new
    PID namespace), no capabilities, and only ``visible`` (read-only: a pushed file's
    bundle) and the scratch folder (its answer) visible beyond the machine's files."""
    spec = SandboxSpec(
        hidden=sandbox.hidden,
        hidden_files=sandbox.hidden_files,
        read_only=visible,
        writable=(scratch,),
        pass_env=(),
        env=env,
    )
    return spec.argv(command, cwd=cwd or scratch)


def _kill(child: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole session (whatever it started too), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _scrub(message: str, folder: str, shown_as: str) -> str:
    """``message`` without the server's paths."""
    paths = {os.path.join(folder, shown_as), folder, os.path.realpath(folder)}
    paths.add(os.path.join(os.path.realpath(folder), shown_as))
    for path in sorted(paths, key=len, reverse=True):  # a file's path before its folder's
        message = message.replace(path, shown_as if path.endswith(shown_as) else "<bundle>")
    return message
