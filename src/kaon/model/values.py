"""References to step outputs: how values travel between steps without passing through the engine.

A step's outputs are a mapping ``name -> ValueRef``. A small JSON value is kept inline as a
:class:`Literal`; anything else lives in the artifact store and is named by an
:class:`ArtifactRef` (content hash, serializer, size). The output of a foreach is a
:class:`RefList` of its items' outputs, in item order, so that the engine never loads a
model just to hand it from one step to the next: workers resolve references themselves.

All of these encode to plain JSON (:func:`encode_ref`, :func:`decode_ref`) for the state store.
A literal may hold tuples (a step returned ``(1, 2)``): its encoding lists where they are
(:func:`tuple_paths`), so that it decodes to the value the step returned, not to lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaon.model.pickling import by_fields

RETURN = "return"  # the output name of a step that returned something other than a mapping


@by_fields
@dataclass(frozen=True, slots=True)
class Literal:
    """A small JSON value kept inline in the state store (tuples included, kept as tuples)."""

    value: Any


@by_fields
@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A value stored in the artifact store, named by the sha256 of its serialized bytes."""

    hash: str
    serializer: str
    size: int
    type_name: str = ""
    artifact_id: int | None = None


@by_fields
@dataclass(frozen=True, slots=True)
class RefList:
    """An ordered collection of references (a foreach's output)."""

    items: tuple[ValueRef, ...]


@by_fields
@dataclass(frozen=True, slots=True)
class RefDict:
    """A mapping of references (a step's outputs seen as one value)."""

    items: Mapping[str, ValueRef]


ValueRef = Literal | ArtifactRef | RefList | RefDict


def collect(refs: list[ValueRef]) -> ValueRef:
    """Combine references into one list reference; all-literal lists collapse to a literal."""
    if all(isinstance(r, Literal) for r in refs):
        return Literal([r.value for r in refs])  # type: ignore[union-attr]
    return RefList(tuple(refs))


def outputs_value(outputs: Mapping[str, ValueRef]) -> ValueRef:
    """The value of ``steps.X`` given X's outputs: the single return value, or a mapping."""
    if len(outputs) == 1 and RETURN in outputs:
        return outputs[RETURN]
    if all(isinstance(r, Literal) for r in outputs.values()):
        return Literal({k: r.value for k, r in outputs.items()})  # type: ignore[union-attr]
    return RefDict(dict(outputs))


def select(ref: ValueRef, key: str | int) -> ValueRef | None:
    """The reference of ``ref[key]`` when it can be taken without loading a blob, else None."""
    if isinstance(ref, RefDict) and isinstance(key, str):
        return ref.items.get(key)
    if isinstance(ref, RefList) and isinstance(key, int):
        return ref.items[key] if -len(ref.items) <= key < len(ref.items) else None
    if isinstance(ref, Literal):
        value = ref.value
        if isinstance(value, Mapping) and isinstance(key, str) and key in value:
            return Literal(value[key])
        if (
            isinstance(value, list | tuple)
            and isinstance(key, int)
            and -len(value) <= key < len(value)
        ):
            return Literal(value[key])
    return None


JsonPath = list[str | int]
"""Where a part of a JSON value is: the keys and indexes leading to it from the top."""


def tuple_paths(value: Any) -> list[JsonPath]:
    """Where the tuples inside the JSON value ``value`` are (``[]`` for ``value`` itself),
    outermost first; empty for a value without tuples (a scalar costs one type check)."""
    found: list[JsonPath] = []
    if type(value) in _CONTAINERS:
        _find_tuples(value, [], found)
    return found


_CONTAINERS = (dict, list, tuple)


def _find_tuples(value: Any, path: JsonPath, found: list[JsonPath]) -> None:
    kind = type(value)
    if kind is tuple:
        found.append(list(path))
    if kind is dict:
        items: Any = value.items()
    elif kind is list or kind is tuple:
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if type(item) in _CONTAINERS:
            path.append(key)
            _find_tuples(item, path, found)
            path.pop()


def with_tuples(value: Any, paths: list[JsonPath]) -> Any:
    """``value`` (decoded JSON) with the lists at ``paths`` (:func:`tuple_paths`) made tuples
    again. Raises ValueError when a path does not lead to a list."""
    if not paths:
        return value
    inner: dict[str | int, list[JsonPath]] = {}
    whole = False
    for path in paths:
        if not path:
            whole = True
        else:
            inner.setdefault(path[0], []).append(path[1:])
    if inner:
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list | tuple):
            value = list(value)
        else:
            raise ValueError(f"tuple paths {paths!r:.80} go through a {type(value).__name__}")
        for key, rest in inner.items():
            try:
                value[key] = with_tuples(value[key], rest)
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"tuple path through {key!r} leads nowhere") from None
    if whole:
        if not isinstance(value, list | tuple):
            raise ValueError(f"a tuple path leads to a {type(value).__name__}, not a list")
        return tuple(value)
    return value


def encode_ref(ref: ValueRef) -> Any:
    """Encode a reference as JSON-able data (the inverse of :func:`decode_ref`)."""
    if isinstance(ref, Literal):
        tuples = tuple_paths(ref.value)
        if tuples:  # JSON holds them as lists: say which were tuples
            return {"t": "lit", "v": ref.value, "tu": tuples}
        return {"t": "lit", "v": ref.value}
    if isinstance(ref, ArtifactRef):
        data: dict[str, Any] = {"t": "art", "h": ref.hash, "s": ref.serializer, "n": ref.size}
        if ref.type_name:
            data["y"] = ref.type_name
        if ref.artifact_id is not None:
            data["id"] = ref.artifact_id
        return data
    if isinstance(ref, RefList):
        return {"t": "list", "i": [encode_ref(r) for r in ref.items]}
    return {"t": "dict", "i": {k: encode_ref(r) for k, r in ref.items.items()}}


def decode_ref(data: Any) -> ValueRef:
    """Decode what :func:`encode_ref` produced. Raises ValueError on anything else."""
    if not isinstance(data, dict) or "t" not in data:
        raise ValueError(f"not an encoded value reference: {data!r:.80}")
    tag = data["t"]
    if tag == "lit":
        tuples = data.get("tu")
        return Literal(with_tuples(data.get("v"), tuples) if tuples else data.get("v"))
    if tag == "art":
        return ArtifactRef(
            hash=data["h"],
            serializer=data["s"],
            size=int(data["n"]),
            type_name=data.get("y", ""),
            artifact_id=data.get("id"),
        )
    if tag == "list":
        return RefList(tuple(decode_ref(r) for r in data["i"]))
    if tag == "dict":
        return RefDict({k: decode_ref(r) for k, r in data["i"].items()})
    raise ValueError(f"unknown value reference tag {tag!r}")


def encode_outputs(outputs: Mapping[str, ValueRef]) -> dict[str, Any]:
    """Encode a step's outputs mapping."""
    return {name: encode_ref(ref) for name, ref in outputs.items()}


def decode_outputs(data: Mapping[str, Any] | None) -> dict[str, ValueRef]:
    """Decode a step's outputs mapping (``None`` means no outputs)."""
    return {name: decode_ref(ref) for name, ref in (data or {}).items()}


def artifact_refs(ref: ValueRef) -> list[ArtifactRef]:
    """Every artifact reference inside ``ref`` (for lineage and garbage collection)."""
    if isinstance(ref, ArtifactRef):
        return [ref]
    if isinstance(ref, RefList):
        return [a for r in ref.items for a in artifact_refs(r)]
    if isinstance(ref, RefDict):
        return [a for r in ref.items.values() for a in artifact_refs(r)]
    return []
