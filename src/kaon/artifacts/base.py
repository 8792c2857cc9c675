"""The artifact store interface: where step outputs live, named by content.

``put`` turns a Python value into a :class:`~kaon.model.values.ValueRef`: a small JSON value
becomes an inline :class:`~kaon.model.values.Literal`; anything else is serialized by the
first serializer that accepts it and written once under its sha256. ``get`` turns any
reference (lists and dicts of references included) back into values, verifying hashes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any

from kaon.model.values import ArtifactRef, ValueRef

INLINE_LIMIT = 16 * 1024  # bytes of JSON above which a value goes to a blob


class ArtifactStore(ABC):
    """Content-addressed storage of step outputs."""

    url: str

    @abstractmethod
    def put(self, value: Any, *, name: str = "") -> ValueRef:
        """Store ``value``; ``name`` only improves error messages.

        Raises :class:`~kaon.errors.SerializationError` naming ``name`` and the type when no
        serializer accepts the value, :class:`~kaon.errors.ArtifactError` when the store fails.
        """

    @abstractmethod
    def get(self, ref: ValueRef) -> Any:
        """Load the value behind ``ref``.

        Raises :class:`~kaon.errors.CorruptArtifactError` on a hash mismatch and
        :class:`~kaon.errors.ArtifactError` when the blob is missing or the store fails.
        """

    def list_items(self, ref: ValueRef) -> Iterator[Any] | None:
        """The items of the list behind ``ref``, one by one, or None when it is not a list.

        A tuple, a numpy array and a pandas Series are lists of their elements (an array's
        first axis, as Python numbers: ``tolist()``). A store may decode a JSON blob lazily,
        so that a long list is never held whole. Raises as :meth:`get` does."""
        value = self.get(ref)
        if isinstance(value, list | tuple):
            return iter(value)
        tolist = getattr(value, "tolist", None)
        if callable(tolist) and isinstance(getattr(value, "ndim", None), int) and value.ndim >= 1:
            items = tolist()
            return iter(items) if isinstance(items, list) else None
        return None

    def put_json_items(self, texts: Iterable[bytes], *, name: str = "") -> ValueRef:
        """Store the list whose items' compact JSON texts are ``texts`` (in order), as
        :meth:`put` would store that list. A store may write it without holding it whole."""
        return self.put([json.loads(text) for text in texts], name=name)

    @abstractmethod
    def exists(self, ref: ArtifactRef) -> bool:
        """True when the blob behind ``ref`` is present."""
