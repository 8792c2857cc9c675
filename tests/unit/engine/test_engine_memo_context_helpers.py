"""A step that hands its ``kaon.context()`` to a project helper, which reads a run fact from
it (``helper.scaled(kaon.context(), x)`` reading ``ctx.params["lr"]``), left that fact out
of its cache key: the fact's name is in the helper's code, while only the step's own code
calls ``kaon.context()``. Changing ``lr`` reused the result computed with the old ``lr``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.client import Client

FLOW = """
import kaon
import helper

@kaon.step(cache=True)
def scaled(x: float) -> float:
    return helper.scaled(kaon.context(), x)

@kaon.step(cache=True)
def shifted(x: int) -> int:
    ctx = kaon.context()
    return helper.shifted(ctx, x)

@kaon.step(cache=True)
def measured(x: float) -> float:
    kaon.context().metric("x", x)  # reads no run fact: shared by every run
    return helper.plain(x)

@kaon.workflow
def ctxhelpers(lr: float = 0.1):
    scaled(1.0)
    measured(1.0)
    with kaon.foreach([1, 2], id="fe") as fe:
        shifted(0)
"""

HELPER = """
def scaled(ctx, x):
    return x * ctx.params["lr"]

def shifted(ctx, x):
    return x + ctx.item

def plain(x):
    return x * 2
"""


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "ctxhelpers.py").write_text(textwrap.dedent(FLOW))
    (folder / "helper.py").write_text(textwrap.dedent(HELPER))
    return f"{folder / 'ctxhelpers.py'}:ctxhelpers"


def test_a_run_fact_a_helper_reads_from_the_passed_context_is_in_the_key(
    target: str, tmp_path: Path
) -> None:
    home = str(tmp_path / "home")
    first = kaon.run(target, home=home, executor="inline")
    changed = kaon.run(target, home=home, executor="inline", lr=0.5)
    client = Client(home=home)

    def seen(run_id: str, path: str) -> tuple[str, object]:
        handle = client.run(run_id)
        status = next(s.status for s in handle.steps if s.path == path)
        return status, handle.output(path)

    assert seen(first.id, "fe[0].shifted") == ("succeeded", 1)
    assert seen(first.id, "fe[1].shifted") == ("succeeded", 2), "item 2 is not item 1's result"
    assert seen(changed.id, "scaled") == ("succeeded", 0.5), "lr changed: not the stale 0.1"
    assert seen(changed.id, "measured")[0] == "cached", "a metric alone reads no run fact"
    assert seen(changed.id, "fe[1].shifted") == ("cached", 2)
