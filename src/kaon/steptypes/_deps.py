"""The project files a step's code file reads as code, for its cache fingerprint.

A notebook, an R script or a Python script is rarely alone: a notebook cell does ``from
nbhelp import FACTOR``, a script ``import consts``, an R script ``source("helper.R")``. Editing
one of those changes what the step computes, so its content is part of the step's code
fingerprint (:meth:`StepType.fingerprint <kaon.steptypes.base.StepType.fingerprint>`), as a
Python step's fingerprint covers the project modules its function reads
(:mod:`kaon.steptypes.fingerprint`).

What is found, transitively, among files that exist:

* in Python (a script, a module it imports, a notebook's code cells): ``import x``, ``from x
  import y``, ``from . import y`` of a module of the file's folder (``x.py``, ``x/__init__.py``,
  ``x/y.py``); a notebook's ``%run other.py``;
* in R: ``source("helper.R")`` (also ``source(file = ...)``, ``sys.source``) with a literal
  path, relative to the script's folder (where an R step runs);
* in a shell script (``.sh``, ``.bash``), line by line, the files of its folder a command runs
  as :func:`shell_code_words` finds them (``source lib.sh``, ``python3 tool.py``), so a shell
  step's ``bash run.sh`` counts what ``run.sh`` runs, and a ``python3 tool.py`` the modules
  ``tool.py`` imports.

A dependency named at run time (``importlib.import_module(name)``, ``source(paste0(...))``)
cannot be seen: pin such a step with ``cache_version``. Library code is not covered.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from collections.abc import Iterator

MAX_FILES = 200  # a step's code does not read more project files than this as code
_R_SOURCE = re.compile(r"""\b(?:sys\.)?source\s*\(\s*(?:file\s*=\s*)?["']([^"']+)["']""")
_RUN_MAGIC = re.compile(r"^\s*%run\s+(?:-\w+\s+)*([^\s;]+\.py)\b", re.MULTILINE)
_SHELL_SUFFIXES = (".sh", ".bash")
# Where a simple command starts (its next word is the program it runs).
_COMMAND_STARTS = frozenset({"|", "||", "&&", ";", "&", "(", "|&", "then", "do", "else"})
# The suffixes of a file of code a command runs (a script, a query, a program's source).
_CODE_SUFFIXES = frozenset(
    {".sh", ".bash", ".zsh", ".py", ".r", ".pl", ".rb", ".js", ".mjs", ".jl", ".sql", ".awk"}
    | {".sed", ".lua", ".php", ".tcl", ".ipynb", ".scala", ".go", ".java", ".kts"}
)


def code_dependencies(path: str) -> list[str]:
    """The project files ``path`` (a ``.py``, ``.ipynb``, ``.R`` or shell file) reads as code,
    transitively, sorted; ``path`` itself is not among them."""
    start = os.path.realpath(path)
    seen = {start}
    queue = [start]
    while queue and len(seen) < MAX_FILES:
        for found in _direct(queue.pop()):
            if found not in seen:
                seen.add(found)
                queue.append(found)
    seen.discard(start)
    return sorted(seen)


def _direct(path: str) -> Iterator[str]:
    """The files ``path`` names directly (those that exist)."""
    folder = os.path.dirname(path)
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return
    if suffix == ".r":
        for name in _R_SOURCE.findall(text):
            yield from _existing(os.path.join(folder, os.path.expanduser(name)))
    elif suffix == ".py":
        yield from _python_imports(text, folder, package=_package_of(path))
    elif suffix in _SHELL_SUFFIXES:
        yield from _shell_script_files(text, folder)
    elif suffix == ".ipynb":
        for cell in _code_cells(text):
            for name in _RUN_MAGIC.findall(cell):
                yield from _existing(os.path.join(folder, name))
            yield from _python_imports(_without_magics(cell), folder, package=None)


def shell_code_words(command: str) -> list[str]:
    """The words of a shell command that name code it runs, when they name a file (in order,
    once each): the program of a simple command (``./run.sh``) or a word with a code file's
    suffix (``bash prep.sh``, ``python train.py``, ``--query=q.sql``), but not the target of
    an output redirection (``> out.sh``: written). Data files (``--data rows.csv``, ``--out
    model.pkl``) are not code: a step's outputs it writes would change its key at every run.
    Nothing for a command that does not split as shell words; no name made at run time
    (``$SCRIPT``)."""
    words = _command_words(command)
    if words is None:
        return []
    found: list[str] = []
    for before, word in zip(["", *words], words, strict=False):
        if ">" in before and not before.strip("<>|&()"):  # an operator writing the word
            continue
        name = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
        if not name or "$" in name or name in found:
            continue
        program = before == "" or before in _COMMAND_STARTS
        if not program and os.path.splitext(name)[1].lower() not in _CODE_SUFFIXES:
            continue
        found.append(name)
    return found


def _command_words(command: str) -> list[str] | None:
    """The command's shell words, operators apart (``sort <in.csv >out.txt``: ``sort``,
    ``<``, ``in.csv``, ``>``, ``out.txt``); None when it does not split (an unclosed quote)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote: bash's error at run time
        return None


def _shell_script_files(text: str, folder: str) -> Iterator[str]:
    """The files of ``folder`` a shell script's commands run (:func:`shell_code_words`,
    line by line), not files elsewhere (``/usr/bin/env``)."""
    mentions = _file_names(folder)
    if mentions is None:
        return
    for line in text.splitlines():
        if mentions.search(line) is None:  # only a line naming a file of the folder is split
            continue
        for name in shell_code_words(line):
            found = os.path.realpath(os.path.join(folder, os.path.expanduser(name)))
            if found.startswith(folder + os.sep) and os.path.isfile(found):
                yield found


def _file_names(folder: str) -> re.Pattern[str] | None:
    """A pattern matching the name of any file of ``folder`` (None: it has none)."""
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError:
        return None
    if not names:
        return None
    return re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))


def _existing(path: str) -> Iterator[str]:
    if os.path.isfile(path):
        yield os.path.realpath(path)


def _package_of(path: str) -> str | None:
    """The folder of a package module (for relative imports), or None."""
    folder = os.path.dirname(path)
    return folder if os.path.isfile(os.path.join(folder, "__init__.py")) else None


def _python_imports(text: str, folder: str, package: str | None) -> Iterator[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _module_files(folder, alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            base = folder if node.level == 0 else (package or folder)
            for _ in range(max(node.level - 1, 0)):
                base = os.path.dirname(base)
            parts = node.module.split(".") if node.module else []
            yield from _module_files(base, parts)
            for alias in node.names:  # `from pkg import mod`: a submodule, if it is one
                yield from _module_files(base, [*parts, alias.name])


def _module_files(base: str, parts: list[str]) -> Iterator[str]:
    """The files of the module ``parts`` under ``base`` and of the packages on its way."""
    folder = base
    for index, part in enumerate(parts):
        if not part.isidentifier():
            return
        yield from _existing(os.path.join(folder, part, "__init__.py"))
        if index == len(parts) - 1:
            yield from _existing(os.path.join(folder, part + ".py"))
        folder = os.path.join(folder, part)


def _code_cells(text: str) -> Iterator[str]:
    try:
        notebook = json.loads(text)
    except ValueError:
        return
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            yield "".join(source) if isinstance(source, list) else str(source)


def _without_magics(cell: str) -> str:
    """A cell's Python, its IPython magics and shell escapes left out."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in cell.splitlines()
    )
