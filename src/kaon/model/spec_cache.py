"""Parsed workflow specs by definition hash, shared by one process.

A stored definition is content-addressed (:func:`~kaon.model.codec.spec_hash`) and never
changes, so a spec parsed once can serve every run of that definition. Reading one back is
not free: about 15 µs per step of the spec, its JSON and the decoding (a 1,000-step chain
spent 15 ms before its first step), and a run made in this process (``kaon run``, the
server's API, its triggers) already holds the spec it was made from.
:func:`~kaon.engine.operations.add_run` leaves that spec here, and an engine in the same
process takes it instead of decoding the stored copy; a run resumed by another process
decodes the stored copy once.

The two are interchangeable: decoding what the encoder wrote gives an equal spec (a property
test of the codec), and specs with one hash differ at most in their locations and
descriptions, which the hash leaves out on purpose, and which a store keeps from the first
definition stored under the hash anyway.

A spec is a value: the cache keeps the very object a run was made from, so a spec must not be
changed (its dataclasses are frozen; the dicts they hold are not) once a run is made from it.
Nothing in Kaon changes one; copying instead would cost more than decoding (a deep copy of
a chain's spec: about 24 µs per step, against 11 to decode it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from kaon.model.codec import workflow_from_dict
from kaon.model.specs import WorkflowSpec

SIZE = 1024  # specs kept; the least recently used goes first


class SpecCache:
    """A bounded, thread-safe map from definition hash to parsed :class:`WorkflowSpec`."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._specs: OrderedDict[str, WorkflowSpec] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, digest: str) -> WorkflowSpec | None:
        """The spec kept under ``digest``, or None."""
        with self._lock:
            spec = self._specs.get(digest)
            if spec is not None:
                self._specs.move_to_end(digest)
            return spec

    def put(self, digest: str, spec: WorkflowSpec) -> None:
        """Keep ``spec`` under ``digest`` (its :func:`~kaon.model.codec.spec_hash`)."""
        with self._lock:
            self._specs[digest] = spec
            self._specs.move_to_end(digest)
            while len(self._specs) > self.size:
                self._specs.popitem(last=False)

    def clear(self) -> None:
        """Forget every spec (as a new process would start)."""
        with self._lock:
            self._specs.clear()

    def decoded(self, digest: str, load: Callable[[], Mapping[str, Any]]) -> WorkflowSpec:
        """The spec kept under ``digest``; else ``load()``'s encoded form, decoded and kept.

        Raises what ``load`` raises, and :class:`~kaon.errors.DefinitionError` for a stored
        form that does not decode (nothing is kept then).
        """
        spec = self.get(digest)
        if spec is None:
            spec = workflow_from_dict(load())
            self.put(digest, spec)
        return spec


SPECS = SpecCache()
"""The process's cache: engines, the registry and :func:`~kaon.engine.operations.add_run`
share it."""
