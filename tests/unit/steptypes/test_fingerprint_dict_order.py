"""A module-level dict a step reads is hashed by value, and a dict's value includes its
order: ``list(FEATURES)``, a model's column order, the layers of a network built from
``LAYERS.items()`` all follow it. The fingerprint sorted the pairs, so reordering
``FEATURES = {"b": 1, "a": 2}`` to ``{"a": 2, "b": 1}`` was a cache hit returning
``['b', 'a']`` where the code now returns ``['a', 'b']``."""

from __future__ import annotations

from pathlib import Path

from kaon.steptypes.python import PythonStepType

FLOW = """
import kaon

FEATURES = DICT

@kaon.step(cache=True)
def columns() -> list[str]:
    return list(FEATURES)

@kaon.workflow
def orderflow():
    columns()
"""


def _fingerprint(folder: Path, literal: str) -> str:
    folder.mkdir()
    path = folder / "orderflow.py"
    path.write_text(FLOW.replace("DICT", literal))
    return PythonStepType().fingerprint({"file": str(path), "function": "columns"}).digest


def test_reordering_a_dict_constant_changes_the_fingerprint(tmp_path: Path) -> None:
    before = _fingerprint(tmp_path / "before", '{"b": 1, "a": 2}')
    assert _fingerprint(tmp_path / "after", '{"a": 2, "b": 1}') != before


def test_the_same_dict_in_another_folder_has_the_same_fingerprint(tmp_path: Path) -> None:
    before = _fingerprint(tmp_path / "before", '{"b": 1, "a": {"y": 1, "x": 2}}')
    assert _fingerprint(tmp_path / "copy", '{"b": 1, "a": {"y": 1, "x": 2}}') == before
