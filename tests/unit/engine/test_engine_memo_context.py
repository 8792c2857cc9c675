"""What a step reads from ``kaon.context()`` (a parameter, the foreach item or index, the
loop iteration) was not part of its cache key: a step computing from
``kaon.context().params["lr"]`` reused its result after ``lr`` changed, and a foreach's
items with the same inputs reused each other's result though each read its own item."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.client import Client

FLOW = """
import kaon

@kaon.step(cache=True)
def scaled() -> float:
    return kaon.context().params["lr"] * 10

@kaon.step(cache=True)
def shifted(x: int) -> int:
    return x + kaon.context().item

@kaon.step(cache=True)
def counted(x: int) -> int:
    ctx = kaon.context()
    return x + 100 * ctx.iteration

@kaon.step(cache=True)
def measured(x: int) -> int:
    kaon.context().metric("x", x)  # reads no run fact: shared by every run and item
    return x

@kaon.workflow
def ctxflow(lr: float = 0.1):
    scaled()
    measured(1)
    with kaon.foreach([1, 2], id="fe") as fe:
        shifted(0)
    with kaon.loop(max_iterations=2, id="lp") as lp:
        done = counted(0)
        lp.until(done > 1000)
"""


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "flow" / "ctxflow.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(FLOW))
    return f"{path}:ctxflow"


def test_run_facts_read_from_the_context_are_in_the_key(target: str, tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    first = kaon.run(target, home=home, executor="inline")
    again = kaon.run(target, home=home, executor="inline")
    changed = kaon.run(target, home=home, executor="inline", lr=0.5)
    client = Client(home=home)

    def seen(run_id: str, path: str) -> tuple[str, object]:
        handle = client.run(run_id)
        status = next(s.status for s in handle.steps if s.path == path)
        return status, handle.output(path)

    assert seen(first.id, "fe[1].shifted") == ("succeeded", 2), "item 2 is not item 1's result"
    assert seen(first.id, "lp[1].counted") == ("succeeded", 100)
    assert seen(again.id, "scaled") == ("cached", 1.0)
    assert seen(again.id, "fe[0].shifted") == ("cached", 1)
    assert seen(again.id, "fe[1].shifted") == ("cached", 2)
    assert seen(again.id, "lp[1].counted") == ("cached", 100)
    assert seen(changed.id, "scaled") == ("succeeded", 5.0), "lr changed: not the stale 1.0"
    assert seen(changed.id, "measured")[0] == "cached", "a metric alone reads no run fact"
    assert seen(changed.id, "fe[1].shifted")[0] == "cached", "it reads the item, not params"


SHELL_FLOW = """
name: shctx
params:
  k: {type: int, default: 1}
defaults: {cache: true}
steps:
  - id: fe
    foreach: [1, 2]
    steps:
      - id: echo
        shell: 'echo "::kaon::output v=$KAON_ITEM"'
      - id: keyed
        shell: 'echo "::kaon::output p=$KAON_PARAMS"'
      - id: plain
        shell: 'echo "::kaon::output v=1"'
"""


def test_a_command_reading_a_run_fact_has_it_in_its_key(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(SHELL_FLOW)
    home = str(tmp_path / "home")
    kaon.run(str(path), home=home, executor="inline")
    changed = kaon.run(str(path), home=home, executor="inline", k=2)
    run = Client(home=home).run(changed.id)
    statuses = {s.path: s.status for s in run.steps}
    assert run.output("fe[0].echo", "v") == 1 and run.output("fe[1].echo", "v") == 2
    assert statuses["fe[0].echo"] == statuses["fe[1].echo"] == "cached"
    assert run.output("fe[0].keyed", "p") == {"k": 2}, "k changed: not the stale {'k': 1}"
    assert statuses["fe[0].keyed"] == "succeeded" and statuses["fe[1].plain"] == "cached"
