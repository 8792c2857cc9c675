"""What a notebook run by a Kaon ``notebook`` step uses to hand values back.

Inside the notebook::

    import kaon.notebook

    users = kaon.notebook.get_input("users")       # a table input (JSON inputs are injected
                                                   # as parameters by papermill)
    kaon.notebook.record("n_users", len(users))    # becomes the step output ``n_users``
    kaon.notebook.record("cohort", users.head(10)) # any picklable value (a DataFrame here)
    kaon.notebook.metric("auc", 0.91)              # becomes a metric of the step
    kaon.notebook.metric("loss", 0.3, step=2)      # ``step`` orders repeated values

The step tells the kernel where to write through the ``KAON_NOTEBOOK_DIR`` environment
variable. Outside a Kaon step (a notebook opened by hand) nothing is written: recorded values
and metrics are kept in memory and :func:`recorded` returns them, so the same notebook runs
interactively unchanged.

The file format (private to this module and :mod:`kaon.steptypes.notebook`): one JSON object
per line in ``records.jsonl``, ``{"kind": "output", "name": ..., "value": ...}`` for JSON
values, ``{"kind": "output", "name": ..., "pickle": "<file>"}`` for others (cloudpickle in the
same folder), ``{"kind": "metric", "name": ..., "value": ..., "step": ...}``. Inputs that are
not JSON are cloudpickled as ``inputs/<n>.pkl`` and listed in ``inputs/index.json``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from typing import Any

import cloudpickle

from kaon.artifacts.jsonable import is_plain_json
from kaon.model.events import MAX_METRIC_NAME_CHARS

DIR_ENV = "KAON_NOTEBOOK_DIR"
RECORDS_FILE = "records.jsonl"
INPUTS_DIR = "inputs"
INPUTS_INDEX = "index.json"
RESERVED_NAMES = frozenset({"notebook", "html"})

_lock = threading.Lock()
_local_outputs: dict[str, Any] = {}
_local_metrics: list[tuple[str, float, int | None]] = []


def _directory() -> str | None:
    return os.environ.get(DIR_ENV) or None


def _append(directory: str, entry: dict[str, Any]) -> None:
    line = json.dumps(entry, allow_nan=False) + "\n"
    with _lock, open(os.path.join(directory, RECORDS_FILE), "a", encoding="utf-8") as handle:
        handle.write(line)


def record(name: str, value: Any) -> Any:
    """Make ``value`` the step output called ``name`` (a later record of a name wins).

    JSON values are written as JSON; anything else is pickled (cloudpickle), so a DataFrame
    stays a DataFrame (and is stored as Parquet). Returns ``value``.

    Raises ``ValueError`` for an empty or reserved name (``notebook``, ``html``: the step's
    own outputs) and whatever pickling raises for a value that cannot be pickled.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("kaon.notebook.record(): the name must be a non-empty string")
    if name in RESERVED_NAMES:
        raise ValueError(f"kaon.notebook.record(): {name!r} is reserved for the notebook step")
    directory = _directory()
    if directory is None:
        _local_outputs[name] = value
        return value
    if is_plain_json(value):  # a tuple is pickled: JSON would give it back as a list
        _append(directory, {"kind": "output", "name": name, "value": value})
        return value
    file = f"output-{uuid.uuid4().hex}.pkl"
    with open(os.path.join(directory, file), "wb") as handle:
        cloudpickle.dump(value, handle)
    _append(directory, {"kind": "output", "name": name, "pickle": file})
    return value


def metric(name: str, value: float, step: int | None = None) -> None:
    """Report the metric ``name`` (a finite number; ``step`` an optional integer).

    Raises ``ValueError`` for an empty name, one longer than
    :data:`~kaon.model.events.MAX_METRIC_NAME_CHARS` characters, or a value that is not a
    finite number.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("kaon.notebook.metric(): the name must be a non-empty string")
    if len(name) > MAX_METRIC_NAME_CHARS:
        raise ValueError(
            f"kaon.notebook.metric(): a name of {len(name):,} characters is longer than "
            f"{MAX_METRIC_NAME_CHARS}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"kaon.notebook.metric(): {name} = {value!r} is not a finite number")
    step_number = None if step is None else int(step)
    directory = _directory()
    if directory is None:
        _local_metrics.append((name, number, step_number))
        return
    _append(directory, {"kind": "metric", "name": name, "value": number, "step": step_number})


def get_input(name: str) -> Any:
    """The step input called ``name`` that could not be injected as a parameter (a table, a
    model: anything that is not JSON).

    Raises ``KeyError`` naming the available inputs when there is no such input, and
    ``RuntimeError`` outside a Kaon notebook step.
    """
    directory = _directory()
    if directory is None:
        raise RuntimeError("kaon.notebook.get_input() only works inside a Kaon notebook step")
    index_path = os.path.join(directory, INPUTS_DIR, INPUTS_INDEX)
    try:
        with open(index_path, encoding="utf-8") as handle:
            index: dict[str, str] = json.load(handle)
    except FileNotFoundError:
        index = {}
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise KeyError(f"no non-JSON input named {name!r} (available: {known})")
    with open(os.path.join(directory, INPUTS_DIR, index[name]), "rb") as handle:
        return cloudpickle.load(handle)


def recorded() -> dict[str, Any]:
    """Outside a Kaon step: what :func:`record` and :func:`metric` kept in memory, as
    ``{"outputs": {...}, "metrics": [(name, value, step), ...]}``."""
    return {"outputs": dict(_local_outputs), "metrics": list(_local_metrics)}


def write_inputs(directory: str, values: dict[str, Any]) -> None:
    """Pickle ``values`` for :func:`get_input` (used by the notebook step, not by notebooks)."""
    folder = os.path.join(directory, INPUTS_DIR)
    os.makedirs(folder, exist_ok=True)
    index: dict[str, str] = {}
    for position, (name, value) in enumerate(values.items()):
        file = f"input-{position}.pkl"
        with open(os.path.join(folder, file), "wb") as handle:
            cloudpickle.dump(value, handle)
        index[name] = file
    with open(os.path.join(folder, INPUTS_INDEX), "w", encoding="utf-8") as handle:
        json.dump(index, handle)


def read_records(directory: str) -> tuple[dict[str, Any], list[tuple[str, float, int | None]]]:
    """``(outputs, metrics)`` recorded in ``directory`` (used by the notebook step).

    Raises ``ValueError`` when the records file is corrupt.
    """
    outputs: dict[str, Any] = {}
    metrics: list[tuple[str, float, int | None]] = []
    path = os.path.join(directory, RECORDS_FILE)
    if not os.path.exists(path):
        return outputs, metrics
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if entry.get("kind") == "metric":
                metrics.append((entry["name"], float(entry["value"]), entry.get("step")))
            elif "pickle" in entry:
                with open(os.path.join(directory, entry["pickle"]), "rb") as blob:
                    outputs[entry["name"]] = cloudpickle.load(blob)
            else:
                outputs[entry["name"]] = entry["value"]
    return outputs, metrics
