"""The ``notebook`` step type: execute a Jupyter notebook with papermill.

Configuration::

    {"file": "analysis.ipynb",        # required; relative to the definition file's folder
     "parameters": {"alpha": 0.1},    # optional, injected by papermill
     "kernel": "python3",             # optional kernel spec name (the default)
     "cwd": "/some/dir",              # optional; default: the notebook's folder
     "html": true}                    # optional; render the executed notebook to HTML

**Parameters.** papermill injects ``parameters`` and every step input whose value is JSON (a
``pathlib.Path`` input is injected as its path string) into a new cell after the cell tagged
``parameters``; an input wins over a ``parameters`` entry of the same name. Inputs that are
not JSON (DataFrames, models) are read in the notebook with
:func:`kaon.notebook.get_input`. The kernel runs with ``KAON_NOTEBOOK_DIR`` plus the same
``KAON_RUN_ID``/``KAON_STEP``/``KAON_ATTEMPT``/``KAON_WORKFLOW`` variables as a shell step.

**Outputs.** ``notebook`` is the executed ``.ipynb`` and ``html`` its HTML rendering (both
``pathlib.Path``, stored by the artifact store's ``files`` serializer; the HTML is rendered
offline by nbconvert and links the usual RequireJS/MathJax CDN scripts, which a browser only
needs for widgets and formulas). Values the notebook records with
:func:`kaon.notebook.record` become outputs of their own names and
:func:`kaon.notebook.metric` calls become metrics. Cell stdout/stderr stream to the step log.

**Failures.** A failing cell raises :class:`~kaon.errors.StepError` of type
``NotebookError`` with the cell's error name and message. The partially executed notebook is
kept: the failed attempt carries it as its ``notebook`` output (see
:class:`~kaon.errors.StepError`), which is stored with lineage and recorded on the failed step
run (``kaon get RUN STEP --output notebook``), though never passed downstream. A kernel
that cannot start raises ``NotebookError`` too. ``timeout_s`` bounds each cell's execution.

Executed notebooks are written under a per-process temporary folder (a
:func:`~kaon.steptypes.scratch.scratch_folder`, removed when the process ends, and pruned of
folders older than an hour) because the runtime stores the returned paths after
:meth:`NotebookStepType.run` returns. The kernel's sockets are in the step's work folder,
never in the notebook's.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import os
import pathlib
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.steptypes._protocol import config_problems, fact_environment, resolve_file
from kaon.steptypes._values import plain_number
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.requirements import Requirement
from kaon.steptypes.scratch import scratch_folder, unusable
from kaon.steptypes.shell import track_process_group

DEFAULT_KERNEL = "python3"
KEEP_S = 3600.0
_KNOWN_KEYS = frozenset({"file", "base_dir", "parameters", "kernel", "cwd", "html"})
_root_lock = threading.Lock()
_root: str | None = None


def _work_root() -> str:
    """This process's folder of notebook step work folders (removed when it ends)."""
    global _root
    with _root_lock:
        if _root is None or not os.path.isdir(_root):
            _root = scratch_folder("notebooks-")
        return _root


def _prune(root: str, keep_s: float = KEEP_S) -> None:
    """Remove work folders older than ``keep_s`` (their outputs were stored long ago)."""
    cutoff = time.time() - keep_s
    with os.scandir(root) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)


class _LogWriter:
    """A file-like object papermill writes cell output to; whole lines go to the step log."""

    def __init__(self, ctx: StepContext, stream: Any) -> None:
        self.ctx = ctx
        self.stream = stream
        self.partial = ""

    def write(self, text: str) -> int:
        pending = self.partial + text
        *lines, self.partial = pending.split("\n")
        for line in lines:
            self.ctx.log(line.rstrip("\r"), self.stream)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: lines are emitted as they complete (see :meth:`close`)."""

    def close(self) -> None:
        if self.partial:
            self.ctx.log(self.partial, self.stream)
            self.partial = ""


def _kernel_manager_class(env: Mapping[str, str], ipc_dir: str, groups: list[int]) -> type[Any]:
    """A jupyter_client kernel manager class whose kernels start with ``env`` and bind their
    Unix sockets in ``ipc_dir``, and whose process group is reported as a live command's
    (:func:`~kaon.steptypes.shell.track_process_group`) and appended to ``groups`` once the
    kernel started, before any cell runs.

    A kernel runs in a session of its own: killed by ``kill -9``, the inline engine (or a
    worker) left it running, and ipykernel's poller that ends a kernel whose parent died never
    ran while a cell held the interpreter's lock (a catastrophic regex): it ran on beside the
    resumed run's. Reported, it is killed with the engine (the reaper) or the worker.

    Without an absolute ``ip``, jupyter_client names the sockets ``kernel-ipc-<port>``
    relative to the kernel's working directory (the workflow's folder), where they stay
    whenever the kernel is not shut down cleanly (a killed worker, a cancelled attempt).
    """
    from jupyter_client.manager import AsyncKernelManager

    kernel_env = dict(env)
    ip = os.path.join(ipc_dir, "kernel")

    class KaonKernelManager(AsyncKernelManager):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"  # Unix sockets: no TCP port, nothing on the network
            self.ip = ip  # in the step's work folder, never in the workflow's

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**kernel_env, **(kw.get("env") or {})}
            await super().start_kernel(**kw)
            provisioner = getattr(self, "provisioner", None)
            group = getattr(provisioner, "pgid", None) or getattr(provisioner, "pid", None)
            if isinstance(group, int):
                groups.append(group)
                track_process_group(group, True)

    return KaonKernelManager


def _ipc_dir(executed: str) -> str:
    """A folder for the kernel's sockets beside the executed notebook (in the step's work
    folder, pruned with it), or a short temporary one when that path is too long for a Unix
    socket (about 100 bytes)."""
    folder = os.path.join(os.path.dirname(executed), "ipc")
    if len(os.path.join(folder, "kernel-65535").encode()) > 100:
        folder = tempfile.mkdtemp(prefix="kaon-ipc-", dir="/tmp")
    os.makedirs(folder, exist_ok=True)
    return folder


def _is_json(value: Any) -> bool:
    from kaon.artifacts.jsonable import is_literal_json

    return is_literal_json(value)


def _as_lists(value: Any) -> Any:
    """A JSON value with its tuples (an upstream step's ``(2, 3)``) as lists: papermill
    injects JSON types, and wrote a tuple as the string ``"(2, 3)"``."""
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


def _split_inputs(
    config: Mapping[str, Any], inputs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(parameters papermill injects, inputs pickled for kaon.notebook.get_input)``."""
    parameters = dict(config.get("parameters") or {})
    pickled: dict[str, Any] = {}
    for name, value in inputs.items():
        value = plain_number(value)  # injected as the number, not left to get_input
        if isinstance(value, pathlib.PurePath):
            parameters[name] = str(value)
        elif _is_json(value):
            parameters[name] = _as_lists(value)  # papermill writes a tuple as a string
        else:
            pickled[name] = value
    return parameters, pickled


def _kernel_env(ctx: StepContext, directory: str) -> dict[str, str]:
    from kaon.notebook import DIR_ENV

    env = dict(os.environ)
    env.update(ctx.extra.get("env") or {})
    env.update(fact_environment(ctx))  # KAON_ITEM, KAON_INDEX... as a shell or R step has
    env[DIR_ENV] = directory
    return env


def render_html(notebook_path: str, html_path: str) -> None:
    """Render the notebook at ``notebook_path`` to a standalone HTML file (no network)."""
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.read(notebook_path, as_version=4)  # type: ignore[no-untyped-call]
    body, _ = HTMLExporter().from_notebook_node(node)  # type: ignore[no-untyped-call]
    pathlib.Path(html_path).write_text(body, encoding="utf-8")


class NotebookStepType(StepType):
    """Executes a notebook with papermill; returns it, its HTML and what it recorded."""

    name: ClassVar[str] = "notebook"

    def requirements(self, config: Mapping[str, Any]) -> tuple[Requirement, ...]:
        """papermill and a Jupyter kernel; nbconvert too unless ``html`` is false."""
        needed = ["papermill", "ipykernel"] + (["nbconvert"] if config.get("html", True) else [])
        return tuple(Requirement(module, "notebook") for module in needed)

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check: ``file`` names an existing, readable ``.ipynb``; ``parameters`` a mapping of
        JSON values, each a name its parameters cell assigns (when it has one, in Python:
        papermill would only warn, and the notebook run with its default); ``kernel``/``cwd``
        strings; ``html`` a boolean."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = config_problems(
            config,
            location,
            _KNOWN_KEYS,
            strings=("file", "base_dir", "kernel", "cwd"),
            mappings=("parameters",),
        )
        parameters = config.get("parameters")
        if isinstance(parameters, Mapping) and not _is_json(dict(parameters)):
            problems.append(
                Problem("'parameters' values must be JSON", location.with_field("parameters"))
            )
            parameters = None  # their names are not checked against the notebook
        file = config.get("file")
        if file is None:
            problems.append(Problem("'file' is required", location.with_field("file")))
        elif isinstance(file, str) and file.strip():
            path = resolve_file(config, "file", location)
            if not path.endswith(".ipynb"):
                problems.append(
                    Problem(
                        f"'file' must be a .ipynb notebook, got {file!r}",
                        location.with_field("file"),
                    )
                )
            elif not os.path.isfile(path):
                problems.append(
                    Problem(f"notebook {path} does not exist", location.with_field("file"))
                )
            else:
                problems.extend(_notebook_problems(path, parameters, location))
        if "html" in config and not isinstance(config["html"], bool):
            problems.append(Problem("'html' must be true or false", location.with_field("html")))
        return problems

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Execute the notebook; return ``{"notebook": Path, "html": Path, **recorded}``.

        Raises :class:`~kaon.errors.StepError` of type ``NotebookError`` for a failing cell or
        a kernel that cannot start, ``ConfigError`` for a missing notebook.
        """
        source = resolve_file(config, "file")
        if not os.path.isfile(source):
            raise StepError("ConfigError", f"notebook {source} does not exist")
        root = _work_root()
        _prune(root)
        try:
            workdir = tempfile.mkdtemp(prefix="step-", dir=root)
        except OSError as exc:
            raise unusable(exc) from exc
        records = os.path.join(workdir, "records")
        os.mkdir(records)
        parameters, pickled = _split_inputs(config, inputs)
        if pickled:
            from kaon.notebook import write_inputs

            write_inputs(records, pickled)
        stem = pathlib.Path(source).stem
        executed = os.path.join(workdir, f"{stem}.ipynb")
        self._execute(ctx, config, source, executed, parameters, _kernel_env(ctx, records))
        outputs: dict[str, Any] = {"notebook": pathlib.Path(executed)}
        if config.get("html", True):
            html = os.path.join(workdir, f"{stem}.html")
            render_html(executed, html)
            outputs["html"] = pathlib.Path(html)
        return {**outputs, **self._recorded(ctx, records)}

    @staticmethod
    def _recorded(ctx: StepContext, records: str) -> dict[str, Any]:
        from kaon.notebook import read_records

        try:
            values, metrics = read_records(records)
        except (ValueError, OSError) as exc:
            raise StepError("NotebookError", f"recorded values cannot be read: {exc}") from None
        for name, value, step in metrics:
            ctx.metric(name, value, step)
        return values

    def _execute(
        self,
        ctx: StepContext,
        config: Mapping[str, Any],
        source: str,
        executed: str,
        parameters: dict[str, Any],
        env: dict[str, str],
    ) -> None:
        import papermill  # type: ignore[import-untyped]
        from papermill.exceptions import (  # type: ignore[import-untyped]
            PapermillExecutionError,
        )

        kernel = str(config.get("kernel") or DEFAULT_KERNEL)
        timeout = ctx.extra.get("timeout_s")
        stdout, stderr = _LogWriter(ctx, "stdout"), _LogWriter(ctx, "stderr")
        ctx.log(f"notebook: executing {source} with kernel {kernel}")
        ipc = _ipc_dir(executed)
        groups: list[int] = []  # the kernel's, once started
        try:
            papermill.execute_notebook(
                source,
                executed,
                parameters=parameters,
                kernel_name=kernel,
                progress_bar=False,
                stdout_file=stdout,
                stderr_file=stderr,
                cwd=str(config.get("cwd") or os.path.dirname(source)),
                execution_timeout=None if timeout is None else max(int(timeout), 1),
                kernel_manager_class=_kernel_manager_class(env, ipc, groups),
                # The parameters are written in the language of the kernel that runs them, also
                # when the notebook does not say it (nbformat's and jupytext's carry no
                # kernel metadata: papermill then fails, having no language to write them in).
                language=_kernel_language(kernel),
            )
        except PapermillExecutionError as exc:
            cell = _source_cell(executed, exc.cell_index) + 1
            message = f"cell {cell} failed: {exc.ename}: {exc.evalue}"
            kept: dict[str, object] = {}
            if os.path.isfile(executed):
                kept["notebook"] = pathlib.Path(executed)
                message += " (the partially executed notebook is kept as output 'notebook')"
            raise StepError(
                "NotebookError",
                message,
                _strip_ansi("\n".join(exc.traceback)),
                outputs=kept,
            ) from None
        except Exception as exc:  # kernel start failures, unreadable notebooks, ...
            raise StepError("NotebookError", f"{source}: {type(exc).__name__}: {exc}") from None
        finally:
            for group in groups:  # shut down (or killed) by papermill by now
                track_process_group(group, False)
            stdout.close()
            stderr.close()
            if os.path.dirname(ipc) != os.path.dirname(executed):  # the short one in /tmp
                shutil.rmtree(ipc, ignore_errors=True)


def _notebook_problems(path: str, parameters: Any, location: Location) -> list[Problem]:
    """What is wrong with the notebook at ``path`` for a step: it cannot be read as a
    notebook, or ``parameters`` names what its ``parameters`` cell does not assign."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        return [Problem(f"notebook {path} cannot be read: {exc}", location.with_field("file"))]
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        return [Problem(f"{path} is not a Jupyter notebook", location.with_field("file"))]
    if not isinstance(parameters, Mapping) or not parameters:
        return []
    declared = _declared_parameters(document, cells)
    if declared is None:
        return []
    problems = []
    for name in parameters:
        if name in declared:
            continue
        close = difflib.get_close_matches(str(name), sorted(declared), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            Problem(
                f"notebook {path} has no parameter {name!r} in its parameters cell "
                f"(it has: {', '.join(sorted(declared)) or 'none'}){hint}",
                location.with_field("parameters").with_field(str(name)),
            )
        )
    return problems


def _declared_parameters(document: dict[str, Any], cells: list[Any]) -> set[str] | None:
    """The names the first cell tagged ``parameters`` assigns, or None when that cannot be
    known: no such cell (papermill injects at the top: every name is read), a kernel in
    another language than Python, a cell that does not parse."""
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    spec, info = metadata.get("kernelspec"), metadata.get("language_info")
    language = (info.get("name") if isinstance(info, dict) else None) or (
        spec.get("language") if isinstance(spec, dict) else None
    )
    if language not in (None, "python"):
        return None
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        tags = (cell.get("metadata") or {}).get("tags") or ()
        if "parameters" not in tags:
            continue
        source = cell.get("source") or ""
        text = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            return None
        names: set[str] = set()
        for node in tree.body:
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(e.id for e in elements if isinstance(e, ast.Name))
        return names
    return None


def _kernel_language(kernel: str) -> str | None:
    """The language of the installed kernel ``kernel``, or None when it is not found (papermill
    then says so, naming it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    try:
        language = KernelSpecManager().get_kernel_spec(kernel).language  # type: ignore[no-untyped-call]
    except Exception:
        return None
    return str(language) if language else None


def _source_cell(executed: str, index: int) -> int:
    """The 0-based index in the source notebook of cell ``index`` of the executed one:
    papermill inserts a cell of injected parameters, which the author never saw."""
    try:
        cells = json.loads(pathlib.Path(executed).read_text(encoding="utf-8"))["cells"]
        injected = sum(
            1
            for cell in cells[:index]
            if "injected-parameters" in (cell.get("metadata", {}).get("tags") or ())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return index
    return index - injected


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
