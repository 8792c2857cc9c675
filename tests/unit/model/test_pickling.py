"""Objects that cross the process executor's pipe pickle as their fields (``by_fields``)."""

from __future__ import annotations

import copy
import pickle
import pickletools
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.executors.base import TaskRequest
from kaon.model import events, values
from kaon.model.events import ErrorInfo, StepFailed, StepStarted, StepSucceeded
from kaon.model.pickling import by_fields
from kaon.model.values import ArtifactRef, Literal, RefDict, RefList

_keys = st.tuples(st.text(max_size=30), st.integers(0, 10**6), st.integers(1, 50))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
_refs = st.recursive(
    st.builds(Literal, _json)
    | st.builds(
        ArtifactRef, st.text(max_size=64), st.sampled_from(["json", "pickle"]), st.integers(0)
    ),
    lambda inner: (
        st.builds(RefList, st.lists(inner, max_size=3).map(tuple))
        | st.builds(RefDict, st.dictionaries(st.text(max_size=5), inner, max_size=3))
    ),
    max_leaves=6,
)
_errors = st.builds(
    ErrorInfo,
    st.text(max_size=20),
    st.text(max_size=50),
    st.text(max_size=50),
    st.booleans(),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=3).map(tuple),
)
_events = st.one_of(
    st.builds(StepStarted, _keys, st.floats(allow_nan=False), st.text(max_size=30)),
    st.builds(
        StepSucceeded,
        _keys,
        st.floats(allow_nan=False),
        st.dictionaries(st.text(max_size=8), _refs, max_size=3),
    ),
    st.builds(
        StepFailed,
        _keys,
        st.floats(allow_nan=False),
        _errors,
        st.dictionaries(st.text(max_size=8), _refs, max_size=2),
    ),
)


@given(st.lists(_events, max_size=5))
def test_an_events_message_loads_back_equal(batch: list[object]) -> None:
    message = ("events", batch)
    assert pickle.loads(pickle.dumps(message, pickle.HIGHEST_PROTOCOL)) == message


@by_fields
@dataclass(frozen=True, slots=True)
class One:
    """A class of one field (attrgetter of one name returns the value, not a tuple)."""

    value: object


def _opcodes(data: bytes) -> set[str]:
    return {op.name for op, _, _ in pickletools.genops(data)}


def _request() -> TaskRequest:
    return TaskRequest(
        key=("run", 3, 1),
        step_path="each[2].work",
        step_type="python",
        config={"file": "steps.py", "function": "work"},
        inputs={"x": Literal(1), "model": ArtifactRef("ab" * 32, "pickle", 10, "Model", 7)},
        params={"lr": 0.1},
        artifact_url="/tmp/artifacts",
        workflow="train",
        item={"fold": 2},
        index=2,
        timeout_s=30.0,
        env={"A": "1"},
        resources={"cpus": 1},
    )


def test_a_task_request_pickles_as_its_fields_and_copies() -> None:
    request = _request()
    data = pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == request
    # The class is called with the fields: no state set afterwards (no BUILD opcode).
    assert "BUILD" not in _opcodes(data)
    assert request.__reduce__()[0] is TaskRequest
    assert copy.copy(request) == request and copy.deepcopy(request) == request


def test_every_event_and_value_class_pickles_by_fields() -> None:
    """A class added to the wire without the decorator would fall back to dataclasses'
    slower state pickling: every event and value class has it."""
    import inspect

    classes = [
        cls
        for module in (events, values)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and hasattr(cls, "__dataclass_fields__")
    ]
    assert len(classes) >= 12
    for cls in classes:
        assert "__reduce__" in vars(cls), cls.__name__


def test_a_single_field_class_and_a_class_with_hidden_fields() -> None:
    assert pickle.loads(pickle.dumps(One([1, 2]))) == One([1, 2])

    @dataclass(frozen=True)
    class Hidden:
        a: int
        b: int = field(init=False, default=0)

    with pytest.raises(TypeError, match="init parameters"):
        by_fields(Hidden)
