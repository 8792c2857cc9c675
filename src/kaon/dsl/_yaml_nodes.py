"""Reading YAML into plain JSON-like values plus a side table of line numbers.

PyYAML composes the document into nodes (which know their line); this module turns the
nodes into dicts, lists and scalars itself, recording ``path -> line`` for every mapping key
and list item, where a path is a tuple of keys and indexes (``("steps", 2, "retry")``).
The values stay clean: no line markers inside them.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import yaml

from kaon.dsl._common import MAX_FILE_BYTES
from kaon.errors import DefinitionError, Location, Problem

Path = tuple[str | int, ...]

MAX_NODES = 100_000  # guards against alias bombs ("billion laughs")
MAX_DEPTH = 100


def read_text_file(path: str, *, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the definition file at ``path``, read at most ``limit`` bytes.

    The size is checked while reading (never more than ``limit + 1`` bytes are read), so a
    huge file or an endless one (a device, a pipe) is refused before any parsing. Raises
    :class:`DefinitionError` naming the file for an unreadable or too large file, and at
    the line and column of the first byte that is not UTF-8.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DefinitionError(
            Problem(f"cannot read workflow file: {reason}", Location(path))
        ) from None
    if len(data) > limit:
        raise DefinitionError(
            Problem(f"workflow file is larger than the limit of {limit:,} bytes", Location(path))
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(data[: exc.start].decode("utf-8", "replace"), None)
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column}"
        raise DefinitionError(Problem(message, Location(path, line))) from None


def _line_column(text: str, position: int | None) -> tuple[int, int]:
    """1-based line and column of ``position`` in ``text`` (its end when None)."""
    end = len(text) if position is None else position
    line = text.count("\n", 0, end) + 1
    return line, end - (text.rfind("\n", 0, end) + 1) + 1


class YamlDocument:
    """A parsed YAML document: its value, the line of every path, problems found reading it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.value: Any = None
        self.lines: dict[Path, int] = {(): 1}
        self.problems: list[Problem] = []
        # Paths whose value could not be read (an unknown tag, bytes, NaN): read as None, a
        # value the file does not hold, so nothing built from them is checked further.
        self.unreadable: list[Path] = []

    def holds_unreadable(self, path: Path) -> bool:
        """Whether a value at ``path`` or under it could not be read."""
        return any(bad[: len(path)] == path for bad in self.unreadable)

    def line_of(self, path: Path) -> int:
        """Line of ``path``, or of its deepest known prefix."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def location(self, path: Path) -> Location:
        """Where ``path`` is: this file, its line, and the path as a dotted field."""
        return Location(self.file, self.line_of(path), dotted(path) or None)


def dotted(path: Path) -> str:
    """``("steps", 0, "retry")`` -> ``"steps[0].retry"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text`` (the content of ``file``).

    Raises :class:`DefinitionError` at the error's line and column for a YAML syntax error,
    a document nested too deeply or too large; problems that leave the rest readable
    (duplicate keys, unsupported tags, non-JSON scalars) are collected in ``problems``.
    """
    document = YamlDocument(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError(_syntax_problem(exc, file)) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, other control characters): say where.
        line, column = _line_column(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        what = f"character U+{code:04X} is not allowed in YAML (column {column})"
        raise DefinitionError(Problem(what, Location(file, line))) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(Problem(f"cannot read YAML: {exc}", Location(file))) from None
    except RecursionError:
        raise DefinitionError(
            Problem("YAML document is nested too deeply", Location(file))
        ) from None
    if node is None:
        return document
    reader = _Reader(document)
    document.value = reader.value(node, (), frozenset())
    return document


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
    if mark is None:
        return Problem(f"YAML syntax error: {what}", Location(file))
    where = Location(file, mark.line + 1)
    return Problem(f"YAML syntax error at column {mark.column + 1}: {what}", where)


class _Reader:
    def __init__(self, document: YamlDocument) -> None:
        self.document = document
        self.constructor = yaml.SafeLoader("")
        self.count = 0

    def problem(self, message: str, path: Path, node: yaml.Node) -> None:
        where = Location(self.document.file, node.start_mark.line + 1, dotted(path) or None)
        self.document.problems.append(Problem(message, where))

    def value(self, node: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            reason = "too large" if self.count > MAX_NODES else "nested too deeply"
            where = Location(self.document.file, node.start_mark.line + 1, dotted(path) or None)
            raise DefinitionError(Problem(f"YAML document is {reason}", where))
        self.document.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in active:
            message = "a YAML alias refers to its own ancestor (a recursive structure)"
            return self.unreadable(message, path, node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, active | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            inner = active | {id(node)}
            return [self.value(item, (*path, i), inner) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path, active: frozenset[int]) -> dict[str, Any]:
        own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        try:
            self.constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problem(f"invalid merge key: {getattr(exc, 'problem', exc)}", path, node)
            return {}
        merged = len(node.value) - own  # merged entries come first; the node's own override
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem("mapping keys must be plain strings", path, key_node)
                continue
            key = str(key_node.value)
            key_path = (*path, key)
            if position >= merged:
                if key in seen:
                    self.problem(f"duplicate key {key!r}", key_path, key_node)
                seen.add(key)
            self.document.lines[key_path] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, key_path, active)
        return result

    def scalar(self, node: yaml.Node, path: Path) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            why = getattr(exc, "problem", None) or exc
            return self.unreadable(f"cannot read value: {why}", path, node)
        if isinstance(value, datetime.date | datetime.datetime):
            return str(node.value)  # keep dates as the text the user wrote
        if isinstance(value, float) and not math.isfinite(value):
            return self.unreadable(f"{node.value!r} is not a JSON number", path, node)
        if value is None or isinstance(value, bool | int | float | str):
            return value
        message = f"unsupported YAML value of type {type(value).__name__}"
        return self.unreadable(message, path, node)

    def unreadable(self, message: str, path: Path, node: yaml.Node) -> None:
        """Record why the value at ``path`` cannot be read; it reads as None."""
        self.problem(message, path, node)
        self.document.unreadable.append(path)
