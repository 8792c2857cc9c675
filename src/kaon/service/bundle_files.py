"""Pushed code on every replica of a server.

A server keeps a pushed file and the files beside it in a folder of its home named by their
digest (``<home>/sources/<digest>/``, :mod:`kaon.service.bundle`), and the definition's steps
name their code there (``"file": ".../sources/<digest>/flow.py"``). Replicas share the
database and the artifact store, not their homes: so a bundle is also kept in the database
(``bundles``), and a definition names its folder by a path that is the same on every replica,
:data:`BUNDLE_ROOT` ``/<digest>/flow.py`` (:func:`canonical`, at push). The same file pushed
through any replica is then the same definition (same hash: no new version).

A replica's engine takes each definition it runs through :meth:`BundleFiles.localize`: the
paths are made its own home's again, and a bundle its home does not have yet is written out
from the database first (into a new folder, renamed into place: a reader never sees half a
bundle). The step's workers, its cache fingerprints and the Ray executor's shipping read the
files there, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaon.model.specs import (
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    WorkflowSpec,
)
from kaon.service.bundle import write_bundle

if TYPE_CHECKING:
    from kaon.store.registry import RegistryStore

log = logging.getLogger(__name__)

BUNDLE_ROOT = "/kaon-bundles"
"""The folder a stored definition names its bundle under (no server has it: each replica maps
it to its own ``<home>/sources``)."""


def canonical(spec: WorkflowSpec, folder: Path) -> WorkflowSpec:
    """``spec`` (evaluated from ``folder``, a bundle's folder) with its steps' paths into
    ``folder`` named under :data:`BUNDLE_ROOT` instead: what is stored, and hashed."""
    inside = f"{folder}/"
    root = f"{BUNDLE_ROOT}/{folder.name}/"

    def portable(text: str) -> str:
        if text == str(folder):  # the folder itself: a shell step's base_dir
            return root.rstrip("/")
        return root + text[len(inside) :] if text.startswith(inside) else text

    return map_paths(spec, portable)


class BundleFiles:
    """A server's bundles: kept in the database at push, written out under ``sources_dir``
    when a definition naming them runs on this replica."""

    def __init__(self, registry: RegistryStore, sources_dir: Path) -> None:
        self.registry = registry
        self.sources_dir = sources_dir

    def keep(self, folder: Path, files: dict[str, str]) -> None:
        """Keep the bundle in ``folder`` (``files``: every file of it, by name)."""
        self.registry.put_bundle(folder.name, files, time.time())

    def localize(self, spec: WorkflowSpec) -> WorkflowSpec:
        """``spec`` with its :data:`BUNDLE_ROOT` paths under this server's ``sources_dir``,
        each bundle they name written out there first if this home lacks it."""
        wanted: set[str] = set()
        prefix = f"{BUNDLE_ROOT}/"

        def local(text: str) -> str:
            if not text.startswith(prefix):
                return text
            rest = text[len(prefix) :]
            wanted.add(rest.split("/", 1)[0])
            return str(self.sources_dir / rest)

        found = map_paths(spec, local)
        for name in sorted(wanted):
            self.ensure(name)
        return found

    def ensure(self, name: str) -> Path:
        """The folder of bundle ``name`` in this home, written out from the database when
        missing (a bundle the database lacks too is left missing: its steps fail naming the
        file)."""
        folder = self.sources_dir / name
        if folder.is_dir() or "/" in name or name.startswith("."):
            return folder
        files = self.registry.get_bundle(name)
        if files is None:
            log.warning("bundle %s is in no folder of this home and not in the database", name)
            return folder
        self.sources_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.sources_dir / f".partial-{name}-{uuid.uuid4().hex}"
        partial.mkdir(mode=0o700)
        try:
            write_bundle(partial, files)
            os.rename(partial, folder)
        except OSError:
            if not folder.is_dir():  # not another thread's or replica's rename that won
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return folder


def names_bundles(spec: WorkflowSpec) -> bool:
    """Whether ``spec`` names code under :data:`BUNDLE_ROOT` (a pushed version's)."""
    prefix = f"{BUNDLE_ROOT}/"
    found = False

    def look(text: str) -> str:
        nonlocal found
        found = found or text.startswith(prefix)
        return text

    map_paths(spec, look)
    return found


def map_paths(spec: WorkflowSpec, change: Callable[[str], str]) -> WorkflowSpec:
    """``spec`` with ``change`` applied to every string of its task steps' configs (the
    configs name the steps' code files), in bodies and embedded subworkflows too; the parts
    that do not change are the same objects."""
    graph = _graph(spec.graph, change)
    return spec if graph is spec.graph else dataclasses.replace(spec, graph=graph)


def _graph(graph: GraphSpec, change: Callable[[str], str]) -> GraphSpec:
    steps = tuple(_step(step, change) for step in graph.steps)
    if all(new is old for new, old in zip(steps, graph.steps, strict=True)):
        return graph
    return dataclasses.replace(graph, steps=steps)


def _step(step: StepSpec, change: Callable[[str], str]) -> StepSpec:
    if isinstance(step, TaskSpec):
        config = _value(step.config, change)
        return step if config is step.config else dataclasses.replace(step, config=config)
    if isinstance(step, ForeachSpec | LoopSpec):
        body = _graph(step.body, change)
        return step if body is step.body else dataclasses.replace(step, body=body)
    if isinstance(step, SubworkflowSpec) and step.spec is not None:
        inner = map_paths(step.spec, change)
        return step if inner is step.spec else dataclasses.replace(step, spec=inner)
    return step


def _value(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        changed = change(value)
        return value if changed == value else changed
    if isinstance(value, Mapping):
        items = {key: _value(item, change) for key, item in value.items()}
        same = all(items[key] is item for key, item in value.items())
        return value if same else items
    if isinstance(value, list | tuple):
        elements = [_value(item, change) for item in value]
        same = all(new is old for new, old in zip(elements, value, strict=True))
        return value if same else type(value)(elements)
    return value
