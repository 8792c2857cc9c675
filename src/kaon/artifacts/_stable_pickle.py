"""What makes a pickle blob's bytes, hence its content hash, the same in every process for
equal values.

A blob is named by the sha256 of its bytes, and a cacheable step's key holds the hashes of
its inputs. Two things made cloudpickle's bytes differ between processes for equal values,
so a step downstream of such an output missed the cache at every run:

* a ``set``'s (or ``frozenset``'s) elements are written in iteration order, which follows
  ``hash()``, and a ``str`` hash changes with each process's hash seed;
* a class pickled by value (a workflow file's class, a class defined in a function) carries
  a tracker id, a random UUID per process, which unpickling uses to give one process one
  class for one id.

:func:`canonical` returns a value to pickle instead of the user's, in which every set (in
plain containers: dicts, lists, tuples, sets) is an :class:`OrderedSet` whose elements are
in a stable order (sorted, or sorted by their own canonical pickle when they are not all
strings, all bytes or all ints); it reduces to ``set(list)``, so any unpickler reads it.
The pickler applies it to the state of objects of Python classes too, and
:func:`stable_class_reduce` gives a class pickled by value a tracker id derived from its
content (its pickle with a placeholder id). Unequal values still pickle differently: only
the order of a set and the spelling of a class's id changed.
"""

from __future__ import annotations

import contextlib
import copyreg
import hashlib
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from cloudpickle import cloudpickle as _cloudpickle_impl

_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement
_PLACEHOLDER_ID = "kaon-class-id-being-computed"
_SORTABLE = frozenset({str, bytes, int})


class OrderedSet:
    """A set or frozenset with its elements in a stable order; pickles as ``kind(items)``."""

    __slots__ = ("items", "kind")

    def __init__(self, kind: type, items: list[Any]) -> None:
        self.kind = kind
        self.items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return self.kind, (self.items,)


class Memo:
    """What :func:`canonical` found out about the containers of one pickle, by ``id``
    (each entry keeps its container alive, so that an ``id`` is never reused meanwhile)."""

    def __init__(self) -> None:
        self.results: dict[int, tuple[Any, Any]] = {}  # id -> (container, its canonical)
        self.holds: dict[int, tuple[Any, bool]] = {}  # id -> (container, holds a set)


_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_SETS = frozenset({set, frozenset})


def canonical(value: Any, memo: Memo, element_bytes: Callable[[Any], bytes]) -> Any:
    """``value`` with each set inside plain containers replaced by an :class:`OrderedSet`
    (the containers holding one are copied; anything else is ``value`` itself). ``memo``
    keeps shared and cyclic references as they were; ``element_bytes`` pickles a set's
    element to order elements that cannot be sorted as they are."""
    if not any_set(value):
        return value  # the common case, checked at C speed
    return _canonical(value, memo, element_bytes)


_NESTED = frozenset({dict, list, tuple})
_MAX_LEVELS = 1_000


def any_set(value: Any) -> bool:
    """Whether ``value`` is or holds, through plain containers, a set (or is nested more
    than :data:`_MAX_LEVELS` deep). Looks at one nesting level at a time, each at C speed:
    a list of a million tuples costs two passes, not a million calls."""
    kind = type(value)
    if kind in _SETS:
        return True
    if kind not in _NESTED:
        return False
    if kind is dict:  # the state of most objects: a small dict of scalars
        if not (set(map(type, value.values())) | set(map(type, value))) & _CONTAINERS:
            return False
    elif not set(map(type, value)) & _CONTAINERS:
        return False
    level, kinds = [value], {kind}
    seen: set[int] = set()  # lists and dicts already looked into (a cycle)
    for _ in range(_MAX_LEVELS):
        with_dicts = dict in kinds
        kinds = set(map(type, _children(level, with_dicts)))
        if kinds & _SETS:
            return True
        if not kinds & _NESTED:
            return False
        if kinds <= _NESTED:  # containers only (a list of tuples): no filtering
            below = list(_children(level, with_dicts))
        else:
            below = [item for item in _children(level, with_dicts) if type(item) in _NESTED]
        if list not in kinds and dict not in kinds:
            level = below  # tuples only: no cycle without a list or a dict
            continue
        level = []
        for item in below:
            if type(item) is tuple:
                level.append(item)
            elif id(item) not in seen:
                seen.add(id(item))
                level.append(item)
    return True


def _children(containers: list[Any], with_dicts: bool) -> Iterator[Any]:
    """The items of plain containers (a dict's keys and values)."""
    if not with_dicts:
        return chain.from_iterable(containers)
    sequences = [c for c in containers if type(c) is not dict]
    dicts = [c for c in containers if type(c) is dict]
    return chain(
        chain.from_iterable(sequences),
        chain.from_iterable(d.keys() for d in dicts),
        chain.from_iterable(d.values() for d in dicts),
    )


def _canonical(value: Any, memo: Memo, element_bytes: Callable[[Any], bytes]) -> Any:
    kind = type(value)
    if kind not in _CONTAINERS or not _holds_set(value, memo):
        return value
    found = memo.results.get(id(value))
    if found is not None and found[0] is value:
        return found[1]
    result: Any
    if kind is dict:
        result = {}
        memo.results[id(value)] = (value, result)  # before its items: a cycle finds it
        for key, item in value.items():
            result[_canonical(key, memo, element_bytes)] = _canonical(item, memo, element_bytes)
    elif kind is list:
        result = []
        memo.results[id(value)] = (value, result)
        result.extend(_canonical(item, memo, element_bytes) for item in value)
    elif kind is tuple or set(map(type, value)) & _CONTAINERS:
        items = [_canonical(item, memo, element_bytes) for item in value]
        result = tuple(items) if kind is tuple else OrderedSet(kind, _ordered(items, element_bytes))
        memo.results[id(value)] = (value, result)
    else:  # a set of scalars (and objects): no copy of each element
        result = OrderedSet(kind, _ordered(list(value), element_bytes))
        memo.results[id(value)] = (value, result)
    return result


def _holds_set(value: Any, memo: Memo) -> bool:
    """Whether the plain container ``value`` is or holds (through plain containers) a set."""
    kind = type(value)
    if kind in _SETS:
        return True
    known = memo.holds.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    memo.holds[id(value)] = (value, True)  # a cycle back to it: copied, so it stays one
    items: Any = value.items() if kind is dict else value
    flat = (part for pair in items for part in pair) if kind is dict else items
    found = any(type(item) in _CONTAINERS and _holds_set(item, memo) for item in flat)
    memo.holds[id(value)] = (value, found)
    return found


def _ordered(items: list[Any], element_bytes: Callable[[Any], bytes]) -> list[Any]:
    kinds = {type(item) for item in items}
    if len(kinds) == 1 and kinds <= _SORTABLE:
        return sorted(items)
    return sorted(items, key=element_bytes)  # equal bytes: either order pickles the same


_OBJECT_REDUCE_EX: Any = object.__reduce_ex__
_OBJECT_REDUCE: Any = object.__reduce__


def plain_object_reduce(obj: Any, protocol: int) -> tuple[Any, ...] | None:
    """The reduction pickle would make of an object of a Python class that pickles by the
    default protocol (``__reduce_ex__`` and ``__reduce__`` of ``object``, no copyreg entry:
    a dataclass, a plain class, a model object), else None."""
    cls: Any = type(obj)
    if not cls.__flags__ & _HEAP_TYPE or isinstance(obj, type | types.FunctionType):
        return None
    if cls.__reduce_ex__ is not _OBJECT_REDUCE_EX or cls.__reduce__ is not _OBJECT_REDUCE:
        return None
    if cls in copyreg.dispatch_table:  # (the pickler checks its own table too)
        return None
    reduced = obj.__reduce_ex__(protocol)
    return reduced if isinstance(reduced, tuple) else None


# Classes pickled by value: their content-derived tracker ids (computed one at a time).
_class_ids: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
_ids_lock = threading.RLock()
_SKELETONS = (_cloudpickle_impl._make_skeleton_class, _cloudpickle_impl._make_skeleton_enum)


class _Writing(threading.local):
    """Classes this thread is writing by value: ``computing`` with a placeholder id (to
    derive their id from), ``by_value`` with theirs (a workflow file's class's copy)."""

    def __init__(self) -> None:
        self.computing: set[type] = set()
        self.by_value: set[type] = set()


_writing = _Writing()


def written_by_value(cls: type) -> bool:
    """Whether this thread is writing ``cls`` itself by value right now (see
    :func:`writing_by_value`), rather than a reference to its file's class."""
    return cls in _writing.computing or cls in _writing.by_value


@contextlib.contextmanager
def writing_by_value(cls: type, *, computing: bool = False) -> Iterator[None]:
    """Within this block, this thread writes ``cls`` by value (with a placeholder id when
    ``computing`` its id)."""
    found = _writing.computing if computing else _writing.by_value
    found.add(cls)
    try:
        yield
    finally:
        found.discard(cls)


def stable_class_reduce(
    cls: type,
    reduced: Any,
    dump: Callable[[Any], bytes],
    canon: Callable[[Any], Any],
) -> Any:
    """``reduced``, cloudpickle's reduction of the class ``cls``, with the tracker id of a
    class written by value derived from its content (:func:`class_id`) and its state
    :func:`canonical` (``canon``); any other reduction as it is."""
    if not isinstance(reduced, tuple) or reduced[0] not in _SKELETONS:
        return reduced
    written = _cloudpickle_impl._DYNAMIC_CLASS_TRACKER_BY_CLASS.get(cls)  # in ``reduced``
    tracker = _PLACEHOLDER_ID if cls in _writing.computing else class_id(cls, dump)
    args = tuple(tracker if arg == written else arg for arg in reduced[1])
    return (reduced[0], args, canon(reduced[2]), *reduced[3:])


def class_id(cls: type, dump: Callable[[Any], bytes]) -> str:
    """The tracker id of ``cls``: the sha256 of its pickle by value with a placeholder id,
    computed once per class and process, and registered with cloudpickle so that this
    process reads the id back as ``cls`` itself (not as a copy of it)."""
    with _ids_lock:
        known = _class_ids.get(cls)
        if known is not None:
            return known
        with writing_by_value(cls, computing=True):
            found = hashlib.sha256(dump(cls)).hexdigest()[:32]
        _class_ids[cls] = found
        with _cloudpickle_impl._DYNAMIC_CLASS_TRACKER_LOCK:
            _cloudpickle_impl._DYNAMIC_CLASS_TRACKER_BY_ID.setdefault(found, cls)
            _cloudpickle_impl._DYNAMIC_CLASS_TRACKER_BY_CLASS[cls] = found
        return found
