"""The restart's plan as it was computed before the rows inside what it redoes were reset in
the database: every row of the run read, the rows to reset listed one by one. The oracle
``test_engine_restart_oracle.py`` checks :func:`kaon.engine.operations.plan_restart` against."""

from __future__ import annotations

from collections import defaultdict

from kaon.engine.nodes import CONDITION_FALSE, NOT_TAKEN, USER_SKIP
from kaon.engine.operations import _downstream
from kaon.model.specs import GraphSpec, WorkflowSpec, body_of
from kaon.model.status import STEP_SUCCESS, StepStatus
from kaon.store.base import StateStore, StepRunRecord


class _Rows:
    def __init__(self, rows: list[StepRunRecord]) -> None:
        self.by_id = {row.id: row for row in rows}
        self.children: dict[int | None, list[StepRunRecord]] = defaultdict(list)
        for row in rows:
            self.children[row.parent_id].append(row)

    def subtree(self, row_id: int) -> list[int]:
        found, todo = [row_id], [row_id]
        while todo:
            for child in self.children.get(todo.pop(), []):
                found.append(child.id)
                todo.append(child.id)
        return found

    def ancestors(self, row: StepRunRecord) -> list[StepRunRecord]:
        chain: list[StepRunRecord] = []
        parent = row.parent_id
        while parent is not None:
            chain.append(self.by_id[parent])
            parent = self.by_id[parent].parent_id
        return chain


def _frame_graph(spec: WorkflowSpec, rows: _Rows, frame_row_id: int | None) -> GraphSpec:
    if frame_row_id is None:
        return spec.graph
    chain = [rows.by_id[frame_row_id], *rows.ancestors(rows.by_id[frame_row_id])]
    graph = spec.graph
    for row in reversed(chain):
        if row.kind in ("item", "iteration"):
            continue
        body = body_of(graph.by_id()[row.step_id])
        assert body is not None
        graph = body
    return graph


def reference_reset(
    store: StateStore, spec: WorkflowSpec, run_id: str, from_path: str | None, only: bool
) -> set[int]:
    """Every row the restart resets, as the former ``restart_run`` listed them."""
    rows = _Rows(store.step_runs(run_id, all_levels=True))
    reset: set[int] = set()
    decided: list[StepRunRecord] = []
    for row in () if only else rows.by_id.values():
        if row.status in STEP_SUCCESS or row.reason == USER_SKIP:
            continue
        if row.status is StepStatus.SKIPPED and row.reason.startswith((CONDITION_FALSE, NOT_TAKEN)):
            decided.append(row)
        else:
            reset.add(row.id)
    if from_path is not None:
        target = store.get_step_run(run_id, from_path)
        cone: set[int] = set(rows.subtree(target.id))
        for row in [target, *rows.ancestors(target)]:
            cone.add(row.id)
            if row.kind == "iteration":
                for later in rows.children.get(row.parent_id, []):
                    if (
                        later.index is not None
                        and row.index is not None
                        and later.index > row.index
                    ):
                        cone.update(rows.subtree(later.id))
            if row.kind in ("item", "iteration"):
                continue
            after = _downstream(_frame_graph(spec, rows, row.parent_id), row.step_id)
            for sibling in rows.children.get(row.parent_id, []):
                if sibling.step_id in after and (sibling.id != row.id or row is target):
                    cone.update(rows.subtree(sibling.id))
        reset |= cone
    if decided:
        by_frame: dict[int | None, list[StepRunRecord]] = defaultdict(list)
        for row in decided:
            by_frame[row.parent_id].append(row)
        starts = {a.id: a for r in reset for a in (rows.by_id[r], *rows.ancestors(rows.by_id[r]))}
        for row in starts.values():
            skipped = by_frame.get(row.parent_id)
            if not skipped or row.kind in ("item", "iteration"):
                continue
            after = _downstream(_frame_graph(spec, rows, row.parent_id), row.step_id)
            for sibling in skipped:
                if sibling.step_id in after:
                    reset.update(rows.subtree(sibling.id))
    for row_id in list(reset):
        reset.update(r.id for r in rows.ancestors(rows.by_id[row_id]))
    return reset
