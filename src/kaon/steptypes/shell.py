"""The ``shell`` step type: run a command, stream its output, read outputs back.

Configuration::

    {"command": "python train.py --k $KAON_INPUT_K",  # required
     "env": {"NAME": "value"},                        # optional, added to the environment
     "cwd": "data",                                   # optional working directory
     "shell": "/bin/bash",                            # optional, the default
     "base_dir": "/project/flows"}                    # set by the loaders

``base_dir`` is the folder of the file that defines the step (the YAML and Python loaders
set it; on a server, the pushed bundle's folder). The command runs there, as a notebook or an
R script runs in its own folder, so ``bash prep.sh`` finds the script beside the workflow
wherever ``kaon run`` was started and on a server; a relative ``cwd`` is taken from there. A
config without ``base_dir`` (written by hand, or stored before it existed) runs in the
worker's working directory.

The command runs as ``<shell> -o pipefail -c <command>`` (``-o pipefail`` only for bash, zsh
and ksh) in a new process group, with stdin closed. It starts held at a gate (see
:func:`_gated`): nothing of it runs before this process's observer (the inline executor's
reaper, a worker's parent) knows its process group. It sees the run's facts as environment
variables:

===================== ==========================================================
``KAON_RUN_ID``       the run id
``KAON_STEP``         the step run's path (``regions[2].train``)
``KAON_ATTEMPT``      the 1-based attempt number
``KAON_WORKFLOW``     the workflow name
``KAON_WORKFLOW_DIR`` the folder of the workflow's file (``base_dir``; empty without it)
``KAON_ITEM``         the foreach item as JSON (``null`` outside a foreach)
``KAON_INDEX``        the foreach index (empty outside a foreach)
``KAON_ITERATION``    the loop iteration (empty outside a loop)
``KAON_PARAMS``       the run's parameters as a JSON object
``KAON_INPUT_<NAME>`` each input, upper-cased name: strings raw, anything else as JSON
``KAON_OUTPUT``       path of an empty temporary file; JSON written there becomes outputs
===================== ==========================================================

Every stdout and stderr line becomes a log line, except stdout lines of the protocol:

* ``::kaon::metric NAME=VALUE [STEP]`` reports a metric (``STEP`` an optional integer);
* ``::kaon::progress FRACTION [MESSAGE]`` reports progress (a message alone is fine too);
* ``::kaon::output NAME=VALUE`` sets an output; ``VALUE`` is JSON, or a raw string when it
  does not parse as JSON;
* ``::kaon::signal NAME [JSON OBJECT]`` sends a signal with those parameters.

After the command exits, a JSON object in ``$KAON_OUTPUT`` is merged into the outputs (any
other JSON value becomes the ``return`` output). Whatever is left of the process group is then
killed: a step's processes end with the step. A non-zero exit raises
:class:`~kaon.errors.StepError` of type ``ShellError`` with the last stderr lines. The step
honours ``timeout_s`` (type ``Timeout``) and is killed, with its process group, when the
attempt is cancelled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.model.values import RETURN
from kaon.steptypes._deps import code_dependencies, shell_code_words
from kaon.steptypes._observers import observers
from kaon.steptypes._protocol import fact_environment
from kaon.steptypes._values import json_default
from kaon.steptypes.base import CodeFingerprint, StepType, config_digest, facts_named
from kaon.steptypes.context import StepContext
from kaon.steptypes.scratch import scratch_folder, unusable

PROTOCOL_PREFIX = "::kaon::"
STDERR_TAIL_LINES = 20
_POLL_S = 0.05
_outputs_lock = threading.Lock()
_outputs: list[str] = []  # this process's folder of commands' output files, once made
_READER_JOIN_S = 5.0
_KNOWN_KEYS = frozenset({"command", "env", "cwd", "shell", "base_dir"})
_PIPEFAIL_SHELLS = frozenset({"bash", "zsh", "ksh"})
# A file the command names (``bash prep.sh``, ``python train.py --data data.csv``) counts by
# its content in the step's cache key, up to this size; a larger one is listed as not covered.
MAX_HASHED_BYTES = 16 * 1024 * 1024

_groups_lock = threading.RLock()  # re-entered by a SIGTERM handler in the same thread
_live_groups: set[int] = set()


def set_process_group_observer(observer: Callable[[int, bool], None] | None) -> None:
    """Have ``observer(pgid, running)`` called when a command's process group starts and ends.

    A worker process tells its parent, so that the parent can kill the commands of a worker
    that died without cleaning up (SIGKILL, out of memory); the inline executor its reaper.
    The observer must not block long.
    """
    observers.group = observer


def track_process_group(pgid: int, running: bool) -> None:
    """Count process group ``pgid`` as a live command of this process (``running``) or not,
    and tell the observer (see :func:`set_process_group_observer`): a step type that starts a
    process in a session of its own (a shell command, a notebook's kernel) reports it here
    before the process runs any of the step's code."""
    with _groups_lock:
        if running:
            _live_groups.add(pgid)
        else:
            _live_groups.discard(pgid)
    observer = observers.group
    if observer is not None:
        with contextlib.suppress(OSError):
            observer(pgid, running)


def kill_live_process_groups() -> None:
    """SIGKILL the process group of every shell command still running in this process.

    Worker processes call this before they exit so that no command outlives its worker.
    """
    with _groups_lock:
        groups = list(_live_groups)
    for pgid in groups:
        _kill_group(pgid)


def live_process_groups() -> int:
    """How many shell commands of this process still run (their process groups)."""
    with _groups_lock:
        return len(_live_groups)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _env_name(name: str) -> str:
    return "KAON_INPUT_" + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def _as_env_value(value: Any) -> str:
    """Strings raw, a path (a file or folder artifact) as the path itself, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[no-any-return]
    return json.dumps(value, default=json_default)


def build_env(
    ctx: StepContext, config: Mapping[str, Any], inputs: Mapping[str, Any], output_path: str
) -> dict[str, str]:
    """The environment a shell step's command runs with (see the module docstring)."""
    env = dict(os.environ)
    env.update(ctx.extra.get("env") or {})
    env.update({str(k): str(v) for k, v in (config.get("env") or {}).items()})
    env.update(fact_environment(ctx))
    env.update(KAON_WORKFLOW_DIR=str(config.get("base_dir") or ""), KAON_OUTPUT=output_path)
    env.update({_env_name(name): _as_env_value(value) for name, value in inputs.items()})
    return env


class _ProtocolReader:
    """Reads a command's stdout: protocol lines become events or outputs, the rest log lines."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.outputs: dict[str, Any] = {}

    def feed(self, line: str) -> None:
        if not line.startswith(PROTOCOL_PREFIX):
            self.ctx.log(line, "stdout")
            return
        verb, _, rest = line[len(PROTOCOL_PREFIX) :].partition(" ")
        try:
            self._apply(verb, rest.strip())
        except (ValueError, KeyError) as exc:
            self.ctx.log(f"kaon: malformed protocol line ({exc}): {line}", "log")

    def _apply(self, verb: str, rest: str) -> None:
        if verb == "metric":
            assignment, _, step = rest.partition(" ")
            name, sep, value = assignment.partition("=")
            if not sep or not name:
                raise ValueError("expected NAME=VALUE")
            self.ctx.metric(name, float(value), int(step) if step.strip() else None)
        elif verb == "progress":  # ``0.5 msg``, ``30/200 msg`` (done of total) or ``msg``
            first, _, message = rest.partition(" ")
            done, slash, total = first.partition("/")
            try:
                if slash:
                    self.ctx.progress(float(done), float(total), message.strip())
                else:
                    self.ctx.progress(float(first), message=message.strip())
            except ValueError:
                self.ctx.progress(None, message=rest)
        elif verb == "output":
            name, sep, raw = rest.partition("=")
            if not sep or not name.strip():
                raise ValueError("expected NAME=VALUE")
            try:
                self.outputs[name.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                self.outputs[name.strip()] = raw
        elif verb == "signal":
            name, _, raw = rest.partition(" ")
            params = json.loads(raw) if raw.strip() else {}
            if not name or not isinstance(params, dict):
                raise ValueError("expected NAME [JSON object]")
            self.ctx.emit_signal(name, **params)
        else:
            raise KeyError(f"unknown verb {verb!r}")


def _pump(stream: IO[bytes], sink: Any) -> None:
    for raw in iter(stream.readline, b""):
        sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()


def working_folder(config: Mapping[str, Any]) -> str | None:
    """Where the command runs: ``cwd`` (a relative one from ``base_dir``), else ``base_dir``,
    else None (the worker's working directory)."""
    base = config.get("base_dir") or None
    cwd = config.get("cwd") or None
    if cwd is None:
        return None if base is None else str(base)
    cwd = os.path.expanduser(str(cwd))
    return cwd if base is None or os.path.isabs(cwd) else os.path.join(str(base), cwd)


def _named_files(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(word, path)`` of each project file of code the command runs (in order, once each):
    a regular file under the command's working directory that a :func:`_code_words` word
    names. Nothing for a command that does not split as shell words."""
    folder = os.path.realpath(working_folder(config) or os.getcwd())
    found: dict[str, str] = {}
    for name in _code_words(config):
        path = os.path.realpath(os.path.join(folder, name))
        if path.startswith(folder + os.sep) and os.path.isfile(path):
            found[name] = path
    return list(found.items())


def _code_files(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """:func:`_named_files`, then the project files they read as code, transitively (what
    ``bash run.sh`` sources, the modules ``python3 tool.py`` imports: see
    :mod:`kaon.steptypes._deps`), each named by its path from the working directory."""
    files = _named_files(config)
    if not files:
        return files
    folder = os.path.realpath(working_folder(config) or os.getcwd())
    found = dict(files)
    seen = set(found.values())
    for _name, path in files:
        for dependency in code_dependencies(path):
            if dependency not in seen:
                seen.add(dependency)
                found[os.path.relpath(dependency, folder)] = dependency
    return list(found.items())


def _code_words(config: Mapping[str, Any]) -> list[str]:
    """The words of the command that name code it runs (see :func:`shell_code_words`)."""
    return shell_code_words(str(config.get("command", "")))


def reach_outside(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(config key, what)`` of each place the command reaches outside the files directly
    in its ``base_dir`` (the workflow's folder) by a relative path: a relative ``cwd`` that is
    another folder (``scripts``, ``..``), and a word of code (see :func:`_code_words`) naming a
    file in another folder (``bash scripts/prep.sh``, ``python ../tools/x.py``). A push
    carries only the files directly in that folder, so a pushed step reaching elsewhere cannot
    run as it does locally. An absolute ``cwd`` or path, a URL or ``~`` is used as it is."""
    base = config.get("base_dir")
    if not isinstance(base, str) or not base:
        return []
    base = os.path.normpath(base)
    cwd = config.get("cwd") or None
    if isinstance(cwd, str) and os.path.isabs(os.path.expanduser(cwd)):
        return []  # the command's files are where the user put them, not in the bundle
    found: list[tuple[str, str]] = []
    if isinstance(cwd, str) and os.path.normpath(os.path.join(base, cwd)) != base:
        found.append(("cwd", cwd))
        return found  # every file it names is then outside too
    for name in _code_words(config):
        if "/" not in name or name.startswith(("/", "~")) or "://" in name:
            continue
        if os.path.dirname(os.path.normpath(os.path.join(base, name))) != base:
            found.append(("command", name))
    return found


def _outputs_folder() -> str:
    """This process's folder for the files commands write their outputs to (``$KAON_OUTPUT``):
    a scratch folder (:mod:`kaon.steptypes.scratch`), so that a worker ending mid-step with
    ``os._exit``, which skips the step's ``finally``, still leaves no file behind."""
    with _outputs_lock:
        if not _outputs or not os.path.isdir(_outputs[0]):  # removed at a worker's end
            _outputs[:] = [scratch_folder("shell-")]
        return _outputs[0]


def _argv(shell: str, command: str) -> list[str]:
    if os.path.basename(shell) in _PIPEFAIL_SHELLS:
        return [shell, "-o", "pipefail", "-c", command]
    return [shell, "-c", command]


# The gate a command starts behind: the process that will run it (already the leader of its
# new session, so its process group is known) waits for a line on stdin before it replaces
# itself with the command, stdin then /dev/null. The step sends that line only once the
# observer was told of the group (see _run): an engine killed by kill -9 between the start and
# that report used to leave a command that its reaper had never heard of, and a resume started
# a second copy. Killed before the line, its end of the pipe closes: the gate reads the end of
# the file and exits without running anything. The user's argv is passed as it is (no change
# to the command's text or its line numbers, any ``shell``).
_GATE_SH = 'read -r gate || exit 125; exec "$@" </dev/null'
# The same in Python, for an environment /bin/sh would not pass on as it is: it drops a name
# that is not a shell identifier (``A.B``) and resets IFS and OPTIND. Some 8 ms slower than
# /bin/sh's 0.3 ms, hence only then. (PWD and PPID, which sh sets right, bash sets so anyway.)
_GATE_PY = (
    "import os, sys\n"
    "if os.read(0, 1) != b'\\n':\n"
    "    os._exit(125)\n"
    "os.dup2(os.open(os.devnull, os.O_RDONLY), 0)\n"
    "try:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'kaon: cannot run {sys.argv[1]}: {exc.strerror}\\n')\n"
    "    os._exit(127)\n"
)
_SH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SH_RESETS = frozenset({"IFS", "OPTIND"})


def _gated(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """``argv`` behind the gate (see _GATE_SH): run, it waits for a line on stdin, then
    becomes ``argv`` with stdin from /dev/null and ``env`` unchanged."""
    if all(_SH_NAME.match(name) and name not in _SH_RESETS for name in env):
        return ["/bin/sh", "-c", _GATE_SH, "kaon", *argv]
    return [sys.executable, "-I", "-S", "-c", _GATE_PY, *argv]


def _open_gate(proc: subprocess.Popen[bytes]) -> None:
    """Let the gated command (see :func:`_gated`) run."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # it was killed meanwhile: nothing to let run
        os.write(proc.stdin.fileno(), b"\n")
    proc.stdin.close()  # unbuffered write: nothing left to flush


def _wait(proc: subprocess.Popen[bytes], ctx: StepContext) -> str | None:
    """Wait for the command; return why it was stopped (``timeout``/``cancelled``) or None."""
    timeout = ctx.extra.get("timeout_s")
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    cancel = ctx.extra.get("cancel_event")
    while True:
        try:
            proc.wait(timeout=_POLL_S)
            return None
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"


def _read_output_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepError("ShellError", f"$KAON_OUTPUT does not hold valid JSON: {exc}") from None
    return dict(value) if isinstance(value, dict) else {RETURN: value}


def _failure(rc: int, stderr_tail: deque[str]) -> StepError:
    if rc < 0:
        message = f"command was killed by signal {signal.Signals(-rc).name}"
    else:
        message = f"command exited with status {rc}"
    if stderr_tail:
        message += "\n" + "\n".join(stderr_tail)
    return StepError("ShellError", message)


class ShellStepType(StepType):
    """Runs a shell command; outputs come from the stdout protocol and ``$KAON_OUTPUT``."""

    name: ClassVar[str] = "shell"

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check that ``command`` is a non-empty string and the optional keys are well typed."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = [
            Problem(f"unknown key {key!r}; expected one of command, env, cwd, shell", location)
            for key in config
            if key not in _KNOWN_KEYS
        ]
        command = config.get("command")
        if not isinstance(command, str) or not command.strip():
            problems.append(
                Problem(
                    "'command' is required (a non-empty string)", location.with_field("command")
                )
            )
        elif "${{" in command:  # never valid bash: "bad substitution" at run time
            problems.append(
                Problem(
                    "a shell command is not a template: ${{ ... }} in it is not substituted; "
                    'pass the value as an input (inputs: {k: "${{ params.k }}"}) and read it '
                    "as $KAON_INPUT_K",
                    location.with_field("command"),
                )
            )
        env = config.get("env", {})
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            problems.append(
                Problem("'env' must map strings to strings", location.with_field("env"))
            )
        for key in ("cwd", "shell", "base_dir"):
            if key in config and not isinstance(config[key], str):
                problems.append(Problem(f"'{key}' must be a string", location.with_field(key)))
        return problems

    def fingerprint(self, config: Mapping[str, Any]) -> str | CodeFingerprint:
        """The command's configuration, and the content of each project file of code the
        command runs (see :func:`_named_files`: ``bash prep.sh``, ``python train.py``) and of
        the project files those read as code (``source lib.sh``, ``import helper``), so that
        editing the script or what it runs is a cache miss. A file larger than
        :data:`MAX_HASHED_BYTES`, or unreadable, is listed as not covered; a name made at run
        time (``$SCRIPT``) is not seen."""
        # Where the workflow's folder is (base_dir) is not the code: a copy of the project, or
        # its pushed bundle on a server, is a hit.
        portable_config = {k: v for k, v in config.items() if k != "base_dir"}
        configured = config_digest(portable_config)
        files = _code_files(config)
        command = json.dumps(portable_config, sort_keys=True, default=str)
        reads = facts_named(command)  # $KAON_ITEM, $KAON_PARAMS...: in the key
        if not files:
            if not reads and "base_dir" not in config:
                return configured
            return CodeFingerprint(configured, config=f"sha256:{configured}", context_reads=reads)
        portable: dict[str, str] = {"config": configured}
        parts: dict[str, str] = {}
        skipped: list[str] = []
        scripts: list[bytes] = []  # their content: a script may read $KAON_ITEM too
        for name, path in files:
            try:
                if os.path.getsize(path) > MAX_HASHED_BYTES:
                    skipped.append(f"{name} (larger than {MAX_HASHED_BYTES // 2**20} MiB)")
                    continue
                digest = hashlib.sha256()
                chunks: list[bytes] = []
                with open(path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                        chunks.append(chunk)
            except OSError as exc:  # unreadable here: said, not a reason to skip the cache
                skipped.append(f"{name} (cannot be read: {exc.strerror or exc})")
                continue
            scripts.append(b"".join(chunks))
            content = digest.hexdigest()
            portable[f"reads {name}"] = content
            parts[f"file {name}"] = content[:16]
        canonical = json.dumps(portable, sort_keys=True, separators=(",", ":"))
        total = hashlib.sha256(canonical.encode()).hexdigest()
        reads = facts_named(command, *scripts)
        return CodeFingerprint(
            total, parts, tuple(skipped), config=f"sha256:{configured}", context_reads=reads
        )

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Run the command; return its outputs (a dict) or None when it set none.

        Raises :class:`~kaon.errors.StepError` (``ShellError`` on a non-zero exit, ``Timeout``
        when ``timeout_s`` passed, ``Cancelled`` when the attempt was cancelled).
        """
        try:
            fd, output_path = tempfile.mkstemp(
                prefix="output-", suffix=".json", dir=_outputs_folder()
            )
        except OSError as exc:
            raise unusable(exc) from exc
        os.close(fd)
        try:
            return self._run(ctx, config, inputs, output_path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(output_path)

    def _run(
        self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any], output_path: str
    ) -> Any:
        folder = working_folder(config)
        if folder is not None and not os.path.isdir(folder):
            raise StepError("ShellError", f"the working folder {folder} does not exist")
        env = build_env(ctx, config, inputs, output_path)
        proc = subprocess.Popen(
            _gated(_argv(str(config.get("shell") or "/bin/bash"), str(config["command"])), env),
            stdin=subprocess.PIPE,  # the gate; the command's own stdin is /dev/null
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
        protocol = _ProtocolReader(ctx)
        stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

        def on_stderr(line: str) -> None:
            stderr_tail.append(line)
            ctx.log(line, "stderr")

        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, protocol.feed), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, on_stderr), daemon=True),
        ]
        try:
            track_process_group(proc.pid, True)  # told before anything of the command runs
            _open_gate(proc)
            for reader in readers:
                reader.start()
            stopped = _wait(proc, ctx)
        finally:
            _kill_group(proc.pid)  # leftovers die with the step; also stops a timed-out command
            proc.wait()
            track_process_group(proc.pid, False)
            for reader in readers:
                if reader.is_alive():
                    reader.join(timeout=_READER_JOIN_S)  # a setsid'd grandchild may hold a pipe
        if stopped == "timeout":
            raise StepError("Timeout", f"command timed out after {ctx.extra.get('timeout_s')} s")
        if stopped == "cancelled":
            raise StepError("Cancelled", "the attempt was cancelled")
        if proc.returncode != 0:
            raise _failure(proc.returncode, stderr_tail)
        outputs = protocol.outputs
        outputs.update(_read_output_file(output_path))
        return outputs or None
