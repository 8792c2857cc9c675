"""What a workflow page needs beyond the registry's lists: the typed parameters a start form
is generated from, a unified diff between two versions, and who did what (the audit trail
of one workflow or one run).

These are views over the registry and the state store; the HTTP routes
(:mod:`kaon.api.routes_details`) check the reader's role before calling them.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kaon.model.specs import NO_DEFAULT, Expr, ParamSpec, WorkflowSpec
from kaon.service.bundle import BUNDLE_SUFFIXES, MAX_BUNDLE_BYTES
from kaon.service.bundle_files import BUNDLE_ROOT
from kaon.service.registry_views import AuditView, audit_view
from kaon.service.safety import readable
from kaon.service.views import RunView, run_view
from kaon.store.reads import RunHistoryPage, RunHistoryQuery, SQLRunReads
from kaon.store.registry import AuditRecord, VersionRecord
from kaon.store.sql import SQLStore

MAX_DIFF_LINES = 5000


class ParamField(BaseModel):
    """One typed parameter of a workflow version, as a start form shows it."""

    name: str
    type: str = Field(description="str | int | float | bool | list | dict | any")
    required: bool
    default: Any = Field(
        default=None, description="the default value (JSON), when it is a constant"
    )
    computed: str | None = Field(default=None, description="the expression of a computed default")
    description: str = ""
    nullable: bool = Field(default=False, description="null is accepted too")
    choices: list[Any] = Field(
        default_factory=list, description="the only values accepted, when not empty"
    )


class ParamsView(BaseModel):
    """The parameters of one version (the active one unless asked)."""

    workflow: str
    version: int
    params: list[ParamField] = Field(default_factory=list)


class VersionDiffView(BaseModel):
    """A unified diff between two versions: of the pushed source text and of the stored
    definition (the spec, which also names the bundle of files the version carries)."""

    workflow: str
    old: int
    new: int
    source_diff: str = Field(default="", description="unified diff of the workflow file")
    spec_diff: str = Field(default="", description="unified diff of the definition (JSON)")
    bundle_diffs: dict[str, str] = Field(
        default_factory=dict, description="unified diff of each bundle file that differs"
    )
    same_definition: bool = False
    truncated: bool = False


class HistoryRunView(RunView):
    """A run in a workflow's history: who or what started it, with which labels."""

    started_by: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)


class RunHistoryView(BaseModel):
    """A page of a workflow's runs, newest first, and how many match the filters."""

    workflow: str
    total: int
    offset: int
    limit: int
    runs: list[HistoryRunView] = Field(default_factory=list)


def run_history(store: SQLStore, query: RunHistoryQuery) -> RunHistoryView:
    """A page of a workflow's run history (see :meth:`SQLRunReads.run_history`)."""
    return run_history_view(SQLRunReads(store).run_history(query), query)


def run_history_view(page: RunHistoryPage, query: RunHistoryQuery) -> RunHistoryView:
    """The view of a page of run history."""
    now = time.time()
    runs = []
    for record in page.rows:
        view = HistoryRunView(**run_view(record, now).model_dump())
        by = record.labels.get("by")
        view.started_by = None if by is None else str(by)
        view.labels = readable(record.labels)
        runs.append(view)
    return RunHistoryView(
        workflow=query.workflow,
        total=page.total,
        offset=query.offset,
        limit=query.limit,
        runs=runs,
    )


def param_field(param: ParamSpec) -> ParamField:
    """The form field of one declared parameter."""
    computed = param.default.source if isinstance(param.default, Expr) else None
    constant = None if param.default is NO_DEFAULT or computed is not None else param.default
    return ParamField(
        name=param.name,
        type=param.type.value,
        required=param.required,
        default=constant,
        computed=computed,
        description=param.description,
        nullable=param.nullable,
        choices=list(param.choices),
    )


def params_view(workflow: str, version: int, spec: WorkflowSpec) -> ParamsView:
    """The start form of a version: its parameters in declaration order."""
    return ParamsView(
        workflow=workflow, version=version, params=[param_field(p) for p in spec.params]
    )


def version_diff(
    old: VersionRecord,
    new: VersionRecord,
    old_spec: dict[str, Any],
    new_spec: dict[str, Any],
    sources_dir: Path | None = None,
    ensure: Callable[[str], Path] | None = None,
) -> VersionDiffView:
    """Unified diffs of two versions' source text, definitions (without source locations)
    and bundle files (the text files pushed beside the workflow file, read from
    ``sources_dir`` only; ``ensure`` writes a bundle pushed through another replica out
    there first), at most :data:`MAX_DIFF_LINES` lines each (``truncated`` says when
    cut)."""
    truncated = False

    def unified(a: str, b: str, a_name: str, b_name: str) -> str:
        nonlocal truncated
        lines = list(
            difflib.unified_diff(
                a.splitlines(keepends=True), b.splitlines(keepends=True), a_name, b_name
            )
        )
        if len(lines) > MAX_DIFF_LINES:
            truncated = True
            lines = lines[:MAX_DIFF_LINES]
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    old_name = f"v{old.version}/{old.source_name}"
    new_name = f"v{new.version}/{new.source_name}"
    source = unified(old.source, new.source, old_name, new_name)
    spec = unified(
        _pretty(old_spec, sources_dir),
        _pretty(new_spec, sources_dir),
        f"v{old.version}",
        f"v{new.version}",
    )
    bundles: dict[str, str] = {}
    if sources_dir is not None:
        before = _bundle(old_spec, sources_dir, old.source_name, ensure)
        after = _bundle(new_spec, sources_dir, new.source_name, ensure)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                bundles[name] = unified(
                    before.get(name, ""),
                    after.get(name, ""),
                    f"v{old.version}/{name}",
                    f"v{new.version}/{name}",
                )
    return VersionDiffView(
        workflow=new.workflow,
        old=old.version,
        new=new.version,
        source_diff=source,
        spec_diff=spec,
        bundle_diffs=bundles,
        same_definition=old.definition_hash == new.definition_hash,
        truncated=truncated,
    )


def audit_views(records: list[AuditRecord]) -> list[AuditView]:
    """The audit trail entries as views, oldest first."""
    return [audit_view(r) for r in records]


def _pretty(spec: dict[str, Any], sources_dir: Path | None) -> str:
    """The definition as sorted, indented JSON; paths into a version's folder are made
    relative (they differ between versions and name the server's folders)."""
    text = json.dumps(_without_locations(spec), indent=2, sort_keys=True, default=str) + "\n"
    roots = {BUNDLE_ROOT}
    if sources_dir is not None:
        roots |= {str(sources_dir), str(sources_dir.resolve())}
    for root in roots:
        text = re.sub(re.escape(root) + r"/[0-9a-f]{16}/", "", text)
    return text


def _without_locations(value: Any) -> Any:
    """The definition without source locations (they name each version's folder)."""
    if isinstance(value, dict):
        return {k: _without_locations(v) for k, v in value.items() if k != "location"}
    if isinstance(value, list):
        return [_without_locations(v) for v in value]
    return value


def _bundle(
    spec: dict[str, Any],
    sources_dir: Path,
    main: str,
    ensure: Callable[[str], Path] | None = None,
) -> dict[str, str]:
    """The bundle files of a version (text, by name), from its folder under
    ``sources_dir``; nothing when the definition names no folder there."""
    file = (spec.get("location") or {}).get("file")
    if not isinstance(file, str) or not file:
        return {}
    root = sources_dir.resolve()
    folder = Path(file).resolve().parent
    if ensure is not None and re.fullmatch(r"[0-9a-f]{16}", folder.name):
        folder = ensure(folder.name).resolve()  # this replica's copy, written out if missing
    if not folder.is_relative_to(root) or folder == root or not folder.is_dir():
        return {}
    found: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name == main or path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix in BUNDLE_SUFFIXES and path.stat().st_size <= MAX_BUNDLE_BYTES:
            found[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return found
