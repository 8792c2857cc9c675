"""What `kaon push` sends: the workflow file and the files beside it that its steps use.

A pushed workflow runs on the server, which has only what was pushed. So a push carries the
definition file and, as a *bundle*, the text files in the same folder that steps read: sibling
Python modules (`import pipeline`), SQL files, notebooks, R scripts, YAML and JSON. The server
stores them together in a folder named by the hash of the whole bundle, so a change to any of
them makes a new version, and identical content is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.specs import TaskSpec, WorkflowSpec
from kaon.service.safety import readable_text

BUNDLE_SUFFIXES = (".py", ".sql", ".ipynb", ".r", ".R", ".sh", ".yaml", ".yml", ".json", ".txt")
MAX_BUNDLE_BYTES = 5_000_000
MAX_BUNDLE_FILES = 1_000
MAX_BUNDLE_NAME = 200  # characters: every file system holds such a name
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # use fullmatch


def read_push(file: str) -> tuple[str, dict[str, str]]:
    """The text of the definition ``file`` and its bundle (sibling files by bare name).

    Raises DefinitionError when the file cannot be read, the bundle is too large, or the
    code imports a package folder beside it (see :func:`unpushed_package_problems`).
    """
    path = Path(file)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(Problem(f"cannot read it: {exc}", Location(file))) from None
    files = collect_bundle(path)
    problems = unpushed_package_problems(file, files)
    if problems:
        raise DefinitionError(problems)
    return source, files


def unpushed_package_problems(file: str, files: Mapping[str, str]) -> list[Problem]:
    """The imports of a package folder beside the Python definition ``file`` (``import
    utils`` of ``utils/__init__.py``), in it and in the sibling modules it imports,
    transitively: a push carries ``files``, the files directly beside it, so on the server
    such an import fails, or imports a package of that name installed there (other code
    than the one run here). Nothing for a definition that is not a ``.py`` file."""
    if not file.endswith(".py"):
        return []
    import ast

    from kaon.steptypes._deps import code_dependencies

    folder = os.path.dirname(os.path.realpath(file))
    shown = os.path.basename(file)
    importers = [os.path.realpath(file)] + [
        found
        for found in code_dependencies(file)
        if os.path.dirname(found) == folder and os.path.basename(found) in files
    ]
    problems: list[Problem] = []
    for importer in importers:
        try:
            tree = ast.parse(Path(importer).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue  # the evaluation says what is wrong with it
        where = (
            file
            if importer == os.path.realpath(file)
            else os.path.join(os.path.dirname(file), os.path.basename(importer))
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if f"{top}.py" in files or not os.path.isfile(
                    os.path.join(folder, top, "__init__.py")
                ):
                    continue
                problems.append(
                    Problem(
                        f"{top!r} is the folder {top}/ beside {shown}, which is not pushed: a "
                        f"push carries the files directly beside {shown}, not its subfolders, "
                        f"so on a server this import fails (or imports another {top!r}); put "
                        f"its modules beside {shown}, or install it as a package where the "
                        "server's workers run and drop the folder",
                        Location(where, node.lineno),
                    )
                )
    return problems


def collect_bundle(path: Path) -> dict[str, str]:
    """Text files beside ``path`` that steps may use (not recursive; hidden files skipped)."""
    files: dict[str, str] = {}
    total = 0
    for sibling in sorted(path.resolve().parent.iterdir()):
        if (
            sibling.name == path.name
            or not sibling.is_file()
            or not sibling.name.endswith(BUNDLE_SUFFIXES)
            or not SAFE_NAME.fullmatch(sibling.name)
        ):
            continue
        try:
            text = sibling.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # not a text file a step reads as source
        total += len(text.encode())
        if total > MAX_BUNDLE_BYTES:
            raise DefinitionError(
                Problem(
                    f"the files beside it exceed {MAX_BUNDLE_BYTES:,} bytes; keep data out of "
                    "the workflow's folder (use the artifact store or a data path)",
                    Location(str(path)),
                )
            )
        files[sibling.name] = text
    return files


def bundle_problems(file_name: str, files: Mapping[str, str]) -> list[Problem]:
    """What is wrong with a received bundle: anything :func:`collect_bundle` would not have
    sent (an unsafe name, a suffix that is not source, a name longer than
    :data:`MAX_BUNDLE_NAME`), more than :data:`MAX_BUNDLE_FILES` files, its size."""
    problems: list[Problem] = []
    if len(files) > MAX_BUNDLE_FILES:
        problems.append(
            Problem(
                f"the bundle has {len(files):,} files; the limit is {MAX_BUNDLE_FILES:,} files",
                Location(file_name, field="files"),
            )
        )
        return problems  # not one problem per file of a flood
    for name in files:
        shown = readable_text(name)[:MAX_BUNDLE_NAME]
        if not SAFE_NAME.fullmatch(name) or name == file_name:
            message = f"bundle file name {shown!r} must be a bare, safe file name"
            problems.append(Problem(message, Location(file_name)))
        elif len(name) > MAX_BUNDLE_NAME:
            message = f"bundle file name {shown!r}... is longer than {MAX_BUNDLE_NAME} characters"
            problems.append(Problem(message, Location(file_name, field="files")))
        elif not name.endswith(BUNDLE_SUFFIXES):
            message = (
                f"bundle file {name!r} is not a file a step reads as source (a bundle holds "
                f"{', '.join(BUNDLE_SUFFIXES)} files)"
            )
            problems.append(Problem(message, Location(file_name, field=f"files.{name}")))
    size = sum(len(text.encode()) for text in files.values())
    if size > MAX_BUNDLE_BYTES:
        problems.append(
            Problem(
                f"the bundle is {size:,} bytes; the limit is {MAX_BUNDLE_BYTES:,}",
                Location(file_name, field="files"),
            )
        )
    return problems


def reach_problems(spec: WorkflowSpec, folder: Path, file_name: str) -> list[Problem]:
    """What a pushed ``spec`` (evaluated in ``folder``, its bundle's folder) cannot reach on
    the server: a shell step defined in ``folder`` that runs in one of its subfolders or above
    it (``cwd: scripts``, ``cwd: ..``) or runs code from there (``bash scripts/prep.sh``). A
    push carries the files directly beside ``file_name`` and nothing else, so such a step
    runs locally and fails on the server, or runs among the server's own files."""
    from kaon.steptypes.shell import reach_outside

    base = os.path.realpath(folder)
    problems: list[Problem] = []
    for _path, step in spec.graph.walk():
        if not isinstance(step, TaskSpec) or step.step_type != "shell":
            continue
        if os.path.realpath(str(step.config.get("base_dir") or "/")) != base:
            continue  # a step of another folder's file: not this push's
        where = Location(file_name, step.location.line, step.location.field)
        for key, what in reach_outside({**step.config, "base_dir": base}):
            kind = "folder" if key == "cwd" else "file"
            problems.append(
                Problem(
                    f"the {kind} {what!r} is not pushed: a push carries the files directly "
                    f"beside {file_name}, not its subfolders or the folders above it, so on a "
                    f"server step {step.id!r} could not run as it does here; put the "
                    f"{'scripts' if key == 'cwd' else 'file'} beside {file_name}"
                    + (" and drop 'cwd'" if key == "cwd" else "")
                    + ", or use an absolute path the server's workers have",
                    where.with_field(f"config.{key}"),
                )
            )
    return problems


def bundle_digest(file_name: str, source: str, files: Mapping[str, str]) -> str:
    """The hash naming the folder that holds a pushed file and its bundle."""
    digest = hashlib.sha256()
    for name, text in [(file_name, source), *sorted(files.items())]:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(text.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def write_bundle(folder: Path, files: Mapping[str, str]) -> None:
    """Write bundle files into ``folder`` (each atomically; existing ones are kept)."""
    for name, text in files.items():
        target = folder / name
        if target.exists():
            continue
        partial = folder / f".partial-{os.getpid()}-{name}"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
