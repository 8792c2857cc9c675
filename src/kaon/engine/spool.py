"""A foreach's items and results without holding them all: memory independent of its size.

:class:`LazyItems` hands out a foreach's items in order as they are expanded, decoding them one
by one (from a JSON blob, the artifact store decodes them lazily, see
:meth:`~kaon.artifacts.base.ArtifactStore.list_items`). :class:`ResultSpool` keeps each
finished item's output reference in an anonymous temporary file, indexed by item, and streams
them back in item order when the foreach completes: into a blob for the join (the list is
materialised only in the join's worker) or, when small, into an inline literal.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from kaon.artifacts.base import INLINE_LIMIT, ArtifactStore
from kaon.model.values import Literal, RefList, ValueRef, decode_ref, encode_ref, tuple_paths

_SLOT = struct.Struct("<QI")  # (offset in the data file, length); length 0: no result
_READ_SLOTS = 4096  # index slots read at once when streaming the results back
SPILL_AT = 256  # results kept in memory before the spool moves to files
FLUSH_AT = 256  # results buffered before a write to the files (two writes, not two per item)
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class LazyItems:
    """A foreach's items, taken in index order; only the next one is held."""

    def __init__(self, values: Iterable[Any]) -> None:
        self._values = iter(values)
        self._ahead: list[Any] = []
        self._next = 0

    def has(self, index: int) -> bool:
        """True when item ``index`` (the next one) exists."""
        if index != self._next:
            raise ValueError(f"foreach items are taken in order: {index} after {self._next - 1}")
        if not self._ahead:
            for value in self._values:
                self._ahead.append(value)
                break
        return bool(self._ahead)

    def take(self, index: int) -> Any:
        """Item ``index`` (the next one); raises IndexError past the last."""
        if not self.has(index):
            raise IndexError(index)
        self._next += 1
        return self._ahead.pop()


class ResultSpool:
    """Finished items' output references by item index: in memory up to :data:`SPILL_AT`
    items, then in two unlinked temporary files (closed when the spool is collected)."""

    def __init__(self) -> None:
        self._memory: dict[int, bytes] | None = {}
        self._fds: tuple[int, int] | None = None
        self._end = 0
        self._written = 0  # the data file's length; what follows is in _pending
        self._pending: list[tuple[int, int, bytes]] = []  # (index, offset, data) not written
        self._size = 2  # of the items' compact JSON as a list: "[]" and commas
        self.all_literal = True
        self.tuples = False  # a literal output holds a tuple (an "R" entry)
        self.count = 0

    def put(self, index: int, ref: ValueRef) -> None:
        """Record item ``index``'s output (at most once per index)."""
        if isinstance(ref, Literal) and not tuple_paths(ref.value):
            data = b"L" + _encode(ref.value).encode("ascii")
        elif isinstance(ref, Literal):  # its tuples are in its encoding, not in JSON text
            self.tuples = True
            data = b"R" + _encode(encode_ref(ref)).encode("ascii")
        else:
            self.all_literal = False
            data = b"R" + _encode(encode_ref(ref)).encode("ascii")
        self._size += len(data)  # the tag byte stands for the comma
        self.count += 1
        if self._memory is not None:
            self._memory[index] = data
            if len(self._memory) >= SPILL_AT:
                self._spill()
            return
        self._write(index, data)

    def _spill(self) -> None:
        memory, self._memory = self._memory or {}, None
        fds = (_anonymous_file(), _anonymous_file())
        self._fds = fds
        weakref.finalize(self, _close_all, fds)
        for index, data in memory.items():
            self._write(index, data)

    def _write(self, index: int, data: bytes) -> None:
        self._pending.append((index, self._end, data))
        self._end += len(data)
        if len(self._pending) >= FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered results: the data in one write, the index slots in one write
        per run of consecutive items (items mostly finish in order)."""
        if not self._pending:
            return
        assert self._fds is not None
        index_fd, data_fd = self._fds
        pending, self._pending = self._pending, []  # in offset order
        os.pwrite(data_fd, b"".join(p[2] for p in pending), self._written)
        self._written = self._end
        pending.sort()  # by item index (unique)
        first, slots = pending[0][0], bytearray()
        for number, (index, offset, data) in enumerate(pending):
            if number and index != pending[number - 1][0] + 1:
                os.pwrite(index_fd, slots, first * _SLOT.size)
                first, slots = index, bytearray()
            slots += _SLOT.pack(offset, len(data))
        os.pwrite(index_fd, slots, first * _SLOT.size)

    def _entries(self, count: int) -> Iterator[bytes | None]:
        """Each item's tagged entry in index order (None: no result)."""
        if self._memory is not None:
            memory = self._memory
            yield from (memory.get(i) for i in range(count))
            return
        self._flush()
        assert self._fds is not None
        index_fd, data_fd = self._fds
        for first in range(0, count, _READ_SLOTS):
            n = min(_READ_SLOTS, count - first)
            raw = os.pread(index_fd, n * _SLOT.size, first * _SLOT.size)
            for offset, length in _SLOT.iter_unpack(raw.ljust(n * _SLOT.size, b"\0")):
                yield os.pread(data_fd, length, offset) if length else None

    def collect(self, count: int, artifacts: ArtifactStore, name: str) -> ValueRef:
        """The list of the ``count`` items' outputs in order (None for an item without one):
        a literal when small, a JSON blob when every output is a literal, else a list of
        references."""
        large = self._size + 4 * (count - self.count) > INLINE_LIMIT
        if self.all_literal and large and not self.tuples:
            return artifacts.put_json_items(_Texts(self, count), name=name)
        refs: list[ValueRef] = []
        for entry in self._entries(count):
            if entry is None:
                refs.append(Literal(None))
            elif entry[:1] == b"L":
                refs.append(Literal(json.loads(entry[1:])))
            else:
                refs.append(decode_ref(json.loads(entry[1:])))
        if all(isinstance(r, Literal) for r in refs):
            values = [r.value for r in refs]  # type: ignore[union-attr]
            if large:  # items holding tuples: stored as the store stores such a list
                return artifacts.put(values, name=name)
            return Literal(values)
        return RefList(tuple(refs))


class _Texts:
    """The compact JSON texts of a spool's first ``count`` outputs, read from the spool
    again each time they are iterated: an upload that is tried again starts over."""

    def __init__(self, spool: ResultSpool, count: int) -> None:
        self._spool = spool
        self._count = count

    def __iter__(self) -> Iterator[bytes]:
        return (b"null" if e is None else e[1:] for e in self._spool._entries(self._count))


def _anonymous_file() -> int:
    """A read-write temporary file that is already unlinked: gone when closed."""
    fd, path = tempfile.mkstemp(prefix="kaon-foreach-")
    os.unlink(path)
    return fd


def _close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
