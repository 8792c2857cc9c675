"""Mutations of the flagship YAML (examples/recsys): 0 crashes, 0 hangs, for a fixed budget.

Each mutation deletes, replaces, renames, duplicates or wraps one node of the recsys workflow
(or splices hostile text into the file), and the loader must answer with a spec or a
DefinitionError whose every problem is located (file, and line or field), in well under PER_LOAD_S.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError
from kaon.model.specs import WorkflowSpec

RECSYS = Path(__file__).parents[3] / "examples" / "recsys" / "recsys.yaml"
TEXT = RECSYS.read_text()
BASE = yaml.safe_load(TEXT)
BUDGET_S = 12.0
PER_LOAD_S = 10.0  # a hang, not a slow machine: the first load imports pipeline.py

HOSTILE_TEXTS = [
    "",
    " ",
    "\n",
    "a\n",
    "[/x]",
    "[bold]",
    "x[²]",
    "²",
    "١٢",
    "\x00",
    "\x07",
    "\u202e",
    "${{",
    "${{ }}",
    "${{ steps.nope }}",
    "${{ params.k * params.k }}",
    "${{ [1,2].map(x, [x, x]) }}",
    "${{ __import__('os') }}",
    "${{ params.__class__ }}",
    "steps.check.stable &&",
    "pipeline.py:nope",
    "pipeline.py:",
    "nope.py:f",
    "../../etc/passwd",
    "/dev/zero",
    "select_users.sql",
    "recsys.yaml",
    "99999999999999999999999999",
    "1e999",
    "NaN",
    "-1",
    "10x",
    "1h30m",
    "9999999d",
    "all_done",
    "exponential",
    "fail_fast",
    "x" * 5000,
]
HOSTILE_KEYS = [
    "id",
    "steps",
    "python",
    "type",
    "config",
    "inputs",
    "loop",
    "foreach",
    "retry",
    "timeout",
    "when",
    "needs",
    "output",
    "as",
    "x",
    "[/k]",
    "a.b",
    "k\n",
    "²",
]
scalars = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities included: YAML writes .nan and .inf
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(HOSTILE_KEYS), inner, max_size=3),
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


HOW = ["delete", "replace", "rename", "duplicate", "wrap", "add"]
SNIPPETS = [
    "\x00",
    "\t",
    "{",
    "]",
    ": ",
    "&a ",
    "*a ",
    "!!python/name:x ",
    "<<: *a\n",
    "'",
    '"',
    "\n- ",
    "${{",
    "\ufeff",
    "\udcff",
    "x[²]",
    "[/x]",
]


def _mutate(document: Any, path: tuple[Any, ...], how: str, value: Any, key: str) -> Any:
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "replace":
        parent[last] = value
    elif how == "rename" and isinstance(parent, dict):
        parent[key] = parent.pop(last)
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    return document


def _check(text: str) -> None:
    started = time.monotonic()
    try:
        result = load_yaml_text(
            text, str(RECSYS.with_name("mutated.yaml")), base_dir=str(RECSYS.parent)
        )
    except DefinitionError as exc:
        assert exc.problems
        for problem in exc.problems:
            where = problem.location
            assert where.file, problem
            assert where.line is not None or where.field, problem
    else:
        assert isinstance(result, WorkflowSpec)
    assert time.monotonic() - started < PER_LOAD_S, "a load took too long"


_STARTED: list[float] = []
_CHECKED: list[int] = []


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(st.data())
def test_mutations_of_the_flagship_yaml_never_crash_or_hang(data: st.DataObject) -> None:
    # A fixed budget: up to 300 mutations, but no more once BUDGET_S has passed.
    if not _STARTED:
        load_yaml_text(TEXT, str(RECSYS), base_dir=str(RECSYS.parent))  # warm: imports
        _STARTED.append(time.monotonic())
    if data.draw(st.integers(0, 4), label="kind") == 0:
        offset = data.draw(st.integers(0, len(TEXT)), label="offset")
        snippet = data.draw(st.sampled_from(SNIPPETS), label="snippet")
        text = TEXT[:offset] + snippet + TEXT[offset:]
    else:
        document = copy.deepcopy(BASE)
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            paths = _paths(document)[1:]
            if not paths:
                break
            path = data.draw(st.sampled_from(paths), label="path")
            how = data.draw(st.sampled_from(HOW), label="how")
            value = data.draw(values, label="value")
            key = data.draw(st.sampled_from(HOSTILE_KEYS), label="key")
            document = _mutate(document, path, how, value, key)
        if time.monotonic() - _STARTED[0] > BUDGET_S:
            return  # past the budget (after drawing: hypothesis needs the same draws)
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    if time.monotonic() - _STARTED[0] <= BUDGET_S:
        _check(text)
        _CHECKED.append(1)


def test_the_budget_was_spent_on_loads() -> None:
    """Runs after the fuzzer (file order): it loaded a meaningful number of mutations."""
    if _STARTED:
        assert len(_CHECKED) >= 20, len(_CHECKED)
