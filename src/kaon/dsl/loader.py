"""Loading workflows from files: ``FILE[:WORKFLOW]`` where FILE is ``.py``, ``.yaml`` or ``.yml``.

A Python file is imported by path under the module name the ``python`` step type uses in
workers (``kaon_user_<sha1(path)[:12]>``, see :mod:`kaon.steptypes.codeload`), so that step
functions resolve to the very same module here and there.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType

from kaon.dsl.python import Workflow
from kaon.errors import DefinitionError, KaonError, Location, Problem
from kaon.model.specs import WorkflowSpec
from kaon.model.text import exception_text

PYTHON_SUFFIXES = (".py",)
YAML_SUFFIXES = (".yaml", ".yml")

_loading: ContextVar[tuple[str, ...]] = ContextVar("kaon_loading_files", default=())


def split_target(target: str) -> tuple[str, str | None]:
    """Split ``"flow.py:recsys"`` into ``("flow.py", "recsys")``; no name gives None."""
    file, sep, name = target.rpartition(":")
    if sep and file.endswith(PYTHON_SUFFIXES + YAML_SUFFIXES) and name and "/" not in name:
        return file, name
    return target, None


def load_workflow(target: str) -> WorkflowSpec:
    """The workflow named by ``target`` (``FILE[:WORKFLOW]``), validated.

    Without a name, the file must define exactly one workflow (a workflow it imports from
    another file, to run as a subworkflow, is not counted; see :func:`_own`). Raises
    :class:`DefinitionError` naming the file for a missing or unreadable file, an unknown
    suffix, an unknown workflow name or several workflows and no name (listing them), and
    with every problem of the definition itself.
    """
    file, name = split_target(target)
    workflows = _load_file(file, only=name)
    where = Location(os.path.realpath(file))
    if name is None:
        if len(workflows) == 1:
            return next(iter(workflows.values()))
        if not workflows:
            raise DefinitionError(Problem("no @kaon.workflow defined in this file", where))
        listed = ", ".join(sorted(workflows))
        raise DefinitionError(
            Problem(f"several workflows ({listed}); pick one with {file}:NAME", where)
        )
    if name not in workflows:
        listed = ", ".join(sorted(workflows)) or "none"
        raise DefinitionError(Problem(f"no workflow {name!r} here (found: {listed})", where))
    return workflows[name]


def load_workflows(path: str) -> dict[str, WorkflowSpec]:
    """Every workflow in a file, or in the ``.py``/``.yaml``/``.yml`` files of a folder
    (not recursive; names starting with ``_`` or ``test_`` are skipped), by name.

    Raises :class:`DefinitionError` with every problem found in any of them, or when two
    workflows of two files share a name (one file importing the other's is not two).
    """
    if not os.path.isdir(path):
        return _load_file(path)
    found: dict[str, WorkflowSpec] = {}
    problems: list[Problem] = []
    for entry in sorted(os.listdir(path)):
        if entry.startswith(("_", "test_", ".")) or not entry.endswith(
            PYTHON_SUFFIXES + YAML_SUFFIXES
        ):
            continue
        full = os.path.join(path, entry)
        try:
            workflows = _load_file(full)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        for name, spec in workflows.items():
            if name in found and found[name].location != spec.location:
                problems.append(Problem(f"a second workflow named {name!r}", spec.location))
            found[name] = spec
    if problems:
        raise DefinitionError(problems)
    return found


@contextmanager
def _guard(path: str) -> Iterator[None]:
    """Detect a file that includes itself through subworkflows."""
    stack = _loading.get()
    if path in stack:
        chain = " -> ".join(os.path.basename(p) for p in (*stack[stack.index(path) :], path))
        raise DefinitionError(
            Problem(f"workflow files include each other: {chain}", Location(path))
        )
    token = _loading.set((*stack, path))
    try:
        yield
    finally:
        _loading.reset(token)


def _load_file(file: str, *, only: str | None = None) -> dict[str, WorkflowSpec]:
    """The workflows of one file by name; of a Python file defining ``only``, that one alone
    is built (another workflow's problems in the same file do not stop it)."""
    path = os.path.realpath(file)
    if not os.path.isfile(path):
        raise DefinitionError(Problem("workflow file not found", Location(path)))
    with _guard(path):
        if path.endswith(YAML_SUFFIXES):
            from kaon.dsl.yaml_loader import load_yaml_file

            spec = load_yaml_file(path)
            return {spec.name: spec}
        if path.endswith(PYTHON_SUFFIXES):
            from kaon.dsl._common import MAX_FILE_BYTES  # not YAML's module: no yaml import

            if os.path.getsize(path) > MAX_FILE_BYTES:
                message = f"workflow file is larger than the limit of {MAX_FILE_BYTES:,} bytes"
                raise DefinitionError(Problem(message, Location(path)))
            return _python_workflows(path, only)
    suffixes = ", ".join(PYTHON_SUFFIXES + YAML_SUFFIXES)
    raise DefinitionError(
        Problem(f"unknown workflow file type; expected {suffixes}", Location(path))
    )


def _python_workflows(path: str, only: str | None = None) -> dict[str, WorkflowSpec]:
    from kaon.dsl.python import gathering_problems
    from kaon.steptypes.codeload import forget_file_module

    with gathering_problems() as gathered:
        try:
            module = import_user_file(path)
        except DefinitionError as exc:
            raise DefinitionError([*gathered, *exc.problems]) from None
    if gathered:  # its steps lack their bad options: never kept, nor run
        try:
            _specs_of(path, module, only)  # the workflows' own problems, listed too
        except DefinitionError as exc:
            gathered.extend(exc.problems)
        finally:
            forget_file_module(path)
        raise DefinitionError(gathered)
    return _specs_of(path, module, only)


def _specs_of(path: str, module: ModuleType, only: str | None) -> dict[str, WorkflowSpec]:
    workflows: dict[str, Workflow[...]] = {}
    twins: list[Problem] = []
    for value in vars(module).values():
        if not isinstance(value, Workflow):
            continue
        first = workflows.setdefault(value.name, value)
        if first is not value:  # one would be run, the other silently ignored
            twins.append(
                Problem(
                    f"a second workflow named {value.name!r} (the first is at line "
                    f"{first.location.line}); give each its own name",
                    value.location,
                )
            )
    if twins:
        raise DefinitionError(twins)
    if only in workflows:
        workflows = {only: workflows[only]}
    elif only is None:
        workflows = _own(path, workflows)
    else:  # the others' problems would hide that the name is wrong
        listed = ", ".join(sorted(workflows)) or "none"
        raise DefinitionError(
            Problem(f"no workflow {only!r} here (found: {listed})", Location(path))
        )
    problems: list[Problem] = []
    specs: dict[str, WorkflowSpec] = {}
    for name, workflow in workflows.items():
        try:
            specs[name] = workflow.spec
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return specs


def _own(path: str, workflows: dict[str, Workflow[...]]) -> dict[str, Workflow[...]]:
    """The workflows defined in the file at ``path``, leaving out those it imports from
    another file (``from flows import child`` to embed it with ``kaon.subworkflow``): the
    file's own are what ``kaon run FILE`` means. A file that defines none (an entry point
    importing a workflow) keeps the ones it imports."""
    own = {name: w for name, w in workflows.items() if w.location.file == path}
    return own or workflows


def import_user_file(path: str) -> ModuleType:
    """Import the Python file at ``path`` as the python step type does in workers.

    Raises :class:`DefinitionError` at the failing line when importing it raises.
    """
    from kaon.steptypes.codeload import display_module_names, load_file_module

    try:
        return load_file_module(path)
    except KaonError:
        raise
    except SyntaxError as exc:
        where = Location(path, exc.lineno)
        raise DefinitionError(Problem(f"syntax error: {exc.msg}", where)) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if os.path.realpath(frame.filename) == path:
                line = frame.lineno
        said = display_module_names(exception_text(exc))  # `module 'kaon'`: a file beside it
        message = f"importing the file raised {type(exc).__name__}: {said}"
        raise DefinitionError(Problem(message, Location(path, line))) from None
