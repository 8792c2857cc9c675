"""The step sandbox: worker processes run under bubblewrap (``bwrap``), holding no keys.

A :class:`SandboxSpec` says what a sandboxed worker may see. The worker (and so every Python
and shell step it runs, and every process those start) gets:

* the machine's files **read-only** (the interpreter, the virtualenv, Kaon's own code);
* an empty, private ``tmpfs`` over every ``hidden`` folder: the server's home (its state
  database, token table, bootstrap token and logs), the user's home directory (client tokens,
  cloud and database credentials); ``/dev/null`` over every ``hidden_files`` (an SQLite
  database kept outside the home, with its WAL files);
* back inside them, ``read_only`` folders (the pushed code bundles) and ``writable`` ones (a
  local artifact store);
* a private ``/tmp``, ``/dev`` and ``/proc`` in a new PID namespace: other processes, the
  server included, are not visible, so ``/proc/<server pid>/environ`` cannot be read;
* a scrubbed environment: only the variables named in ``pass_env`` (``PATH``, locale, time
  zone, ``PYTHONPATH``, Kaon's S3 endpoint and time limit...), plus ``env``;
* no capabilities, even when the server runs as root (so nothing can be unmounted to
  uncover what is hidden), and a session of its own (no terminal to inject input into);
* death with its parent: when the engine's process dies, even by SIGKILL, the kernel kills
  the whole PID namespace; the executor cancelling the worker does the same.

The network is not isolated (steps fetch data and may call Kaon's API with their run's token).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kaon.errors import ConfigurationError

BWRAP = "bwrap"
DEFAULT_PASS_ENV = (
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    # Kaon's own settings a step opens the S3 artifact store with (by its URL, as the engine
    # does): the same endpoint and time limits, not AWS's. Not secrets; credentials are
    # added by name (KAON_SANDBOX_ENV).
    "KAON_S3_ENDPOINT_URL",
    "KAON_S3_TIMEOUT_S",
)


def bwrap_path() -> str | None:
    """Where the ``bwrap`` program is, or None when it is not installed."""
    return shutil.which(BWRAP)


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandboxed worker sees (see the module docstring)."""

    hidden: tuple[str, ...] = ()
    hidden_files: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = DEFAULT_PASS_ENV
    env: Mapping[str, str] = field(default_factory=dict)

    def environment(self, source: Mapping[str, str] | None = None) -> dict[str, str]:
        """The scrubbed environment of a sandboxed worker, taken from ``source``
        (default: this process's environment)."""
        environ = os.environ if source is None else source
        kept = {name: environ[name] for name in self.pass_env if name in environ}
        kept.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        kept["HOME"] = "/tmp"
        kept["TMPDIR"] = "/tmp"
        kept["KAON_SANDBOXED"] = "1"
        kept.update(self.env)
        return kept

    def argv(self, command: Sequence[str], *, cwd: str | None = None) -> list[str]:
        """``bwrap ... -- command``. Raises ConfigurationError when bwrap is not installed."""
        program = bwrap_path()
        if program is None:
            raise ConfigurationError(
                "the step sandbox needs bubblewrap (`apt-get install bubblewrap`), or turn "
                "it off (--sandbox off)"
            )
        argv = [program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # No capabilities (bwrap keeps them for root): no unmounting what hides the home.
        argv += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"]
        argv += ["--cap-drop", "ALL"]
        for path, kind in self._rules():
            if kind == "hide":
                argv += ["--tmpfs", path]
            elif kind == "null":
                argv += ["--ro-bind", "/dev/null", path]
            else:
                argv += ["--ro-bind" if kind == "ro" else "--bind", path, path]
        argv += ["--clearenv"]
        for name, value in self.environment().items():
            argv += ["--setenv", name, value]
        argv += ["--chdir", cwd if cwd and self.visible(cwd) else "/tmp", "--", *command]
        return argv

    @property
    def _hidden(self) -> tuple[str, ...]:
        return ("/tmp", *self.hidden)  # a private scratch /tmp for each worker

    def visible(self, path: str) -> bool:
        """Whether ``path`` is visible inside the sandbox: the deepest rule covering it is not
        a hiding one."""
        real = os.path.realpath(path)
        covering = [(p, kind) for p, kind in self._rules() if _under(real, p)]
        return not covering or covering[-1][1] in ("ro", "rw")

    def _rules(self) -> list[tuple[str, str]]:
        """Mount rules ``(path, kind)`` (kind: hide, null, ro, rw), shallowest first, so that
        in bwrap's order the deepest rule for a path wins: a bound-back folder inside a hidden
        one is visible, a hidden folder inside a bound one is hidden."""
        hidden = _existing(self._hidden)
        rules = [(p, "ro") for p in self._code_under(hidden)]
        rules += [(p, "ro") for p in _existing(self.read_only)]
        rules += [(p, "rw") for p in _existing(self.writable)]
        rules += [(p, "hide") for p in hidden]
        rules += [(os.path.realpath(f), "null") for f in self.hidden_files if os.path.isfile(f)]
        order = {"ro": 0, "rw": 1, "hide": 2, "null": 3}  # at one path, hiding wins
        unique = {(path, kind) for path, kind in rules}
        ordered = sorted(unique, key=lambda r: (r[0].rstrip(os.sep).count(os.sep), order[r[1]]))
        return [r for r in ordered if r[1] != "null" or not _already_hidden(r[0], ordered)]

    def _code_under(self, hidden: Sequence[str]) -> list[str]:
        """The interpreter's and Kaon's folders that a hidden folder would cover: bound back
        read-only (a virtualenv in the user's home directory, say)."""
        code = {sys.prefix, sys.base_prefix, *(p for p in sys.path if p)}
        secret = [os.path.realpath(h) for h in (*hidden, *self.hidden_files)]
        found = []
        for path in sorted(code):
            real = os.path.realpath(path)
            if not os.path.isdir(real) or not any(_under(real, h) for h in hidden):
                continue
            if any(_under(s, real) for s in secret):
                continue  # a hidden folder itself (``python -m`` run in the home), or above one
            found.append(real)
        return _outermost(found)


def _already_hidden(file: str, rules: Sequence[tuple[str, str]]) -> bool:
    """Whether the deepest folder rule covering ``file`` hides it already."""
    covering = [kind for path, kind in rules if kind != "null" and _under(file, path)]
    return bool(covering) and covering[-1] == "hide"


def _under(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _existing(paths: Sequence[str]) -> list[str]:
    return [os.path.realpath(p) for p in paths if os.path.isdir(p)]


def _outermost(paths: Sequence[str]) -> list[str]:
    """Existing folders of ``paths``, resolved, without those inside another one."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    kept: list[str] = []
    for path in real:
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept
