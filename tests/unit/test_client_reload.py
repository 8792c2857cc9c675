"""kaon.start after a step's module was edited and reloaded in the same process (a notebook)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.client import RunHandle

SOURCE = """\
import kaon

@kaon.step(cache=True)
def scale(x: int) -> int:
    return x * FACTOR

@kaon.workflow
def scaled(n: int = 3):
    return scale(n)
"""


@pytest.mark.parametrize("cache", [True, False])
def test_a_reloaded_step_runs_its_new_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "kaon_test_reloaded_pipeline.py"
    source.write_text(textwrap.dedent(SOURCE).replace("FACTOR", "2"))
    try:
        import kaon_test_reloaded_pipeline as pipeline  # type: ignore[import-not-found]

        first = kaon.start(pipeline.scaled, home=tmp_path / "home", no_cache=not cache)
        assert isinstance(first, RunHandle)
        assert first.wait(timeout=60) == "succeeded"
        assert first.output("scale") == 6

        source.write_text(textwrap.dedent(SOURCE).replace("FACTOR", "3"))
        importlib.reload(pipeline)
        second = kaon.start(pipeline.scaled, home=tmp_path / "home", no_cache=not cache)
        assert isinstance(second, RunHandle)
        assert second.wait(timeout=60) == "succeeded"
        assert second.output("scale") == 9
        assert second.steps[0].status == "succeeded"  # executed, not a hit of the old code
    finally:
        sys.modules.pop("kaon_test_reloaded_pipeline", None)
