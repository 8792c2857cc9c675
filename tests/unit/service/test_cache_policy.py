"""Forcing work: `--no-cache`, `--force STEP` and `restart --force` (kaon.run options and the
service), and the policy's matching of step ids and paths."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import pytest

import kaon
from kaon.errors import ParameterError
from kaon.model.breakpoints import Breakpoint
from kaon.model.cache_policy import CachePolicy
from kaon.model.status import StepStatus
from kaon.service import LocalService, Settings


def _count(log: str, name: str) -> None:
    with open(log, "a") as f:
        f.write(name + "\n")


@kaon.step(cache=True)
def first(log: str) -> int:
    _count(log, "first")
    return 1


@kaon.step(cache=True)
def second(log: str, x: int) -> int:
    _count(log, "second")
    return x + 1


@kaon.workflow(name="forcing")
def forcing(log: str = "") -> None:
    second(log, first(log))


@pytest.fixture
def service(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalService]:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


class Runs:
    def __init__(self, service: LocalService, log: pathlib.Path) -> None:
        self.service, self.log = service, log

    def start(self, cache: CachePolicy | None = None) -> str:
        run_id = self.service.create_run(forcing.spec, {"log": str(self.log)}, cache=cache).id
        self.service.execute(run_id)
        return run_id

    def statuses(self, run_id: str) -> dict[str, StepStatus]:
        return {r.path: r.status for r in self.service.store.step_runs(run_id)}

    def executed(self) -> list[str]:
        text = self.log.read_text() if self.log.exists() else ""
        self.log.write_text("")
        return text.split()


@pytest.fixture
def runs(service: LocalService, tmp_path: pathlib.Path) -> Runs:
    r = Runs(service, tmp_path / "log.txt")
    r.start()
    assert r.executed() == ["first", "second"]
    return r


def test_no_cache_executes_everything_and_records_entries(runs: Runs) -> None:
    cached = runs.start()
    assert set(runs.statuses(cached).values()) == {StepStatus.CACHED}
    forced = runs.start(CachePolicy(lookup=False))
    assert sorted(runs.executed()) == ["first", "second"]
    assert set(runs.statuses(forced).values()) == {StepStatus.SUCCEEDED}
    view = runs.service.experiments.explain(forced, "first")
    assert view.verdict == "forced" and "--no-cache" in view.message
    # Lookups are back on for the next run: a hit again.
    again = runs.start()
    assert set(runs.statuses(again).values()) == {StepStatus.CACHED}


def test_force_a_step_its_successor_follows_the_cache_rules(runs: Runs) -> None:
    run_id = runs.start(CachePolicy(force=("first",)))
    # first executes; its output is the same, so second is a hit.
    assert runs.executed() == ["first"]
    assert runs.statuses(run_id) == {"first": StepStatus.SUCCEEDED, "second": StepStatus.CACHED}


def test_force_an_unknown_step_is_a_parameter_error(runs: Runs) -> None:
    with pytest.raises(ParameterError, match="no step 'nope'"):
        runs.start(CachePolicy(force=("nope",)))


def test_restart_force_executes_the_restarted_steps(runs: Runs) -> None:
    cached = runs.start()
    runs.service.restart(cached, from_step="first")
    runs.service.execute(cached)
    assert runs.executed() == []  # a plain restart takes the cache again
    runs.service.restart(cached, from_step="second", force=True)
    runs.service.execute(cached)
    assert runs.executed() == ["second"]
    assert runs.statuses(cached) == {"first": StepStatus.CACHED, "second": StepStatus.SUCCEEDED}
    # It executed: it no longer says it reused another run's execution (the panel did).
    assert runs.service.store.get_step_run(cached, "second").cached_from is None
    assert runs.service.store.get_step_run(cached, "first").cached_from is not None
    runs.service.restart(cached, from_step="first")  # --force is cleared by the next restart
    runs.service.execute(cached)
    assert runs.executed() == []


def test_kaon_run_options(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    log = tmp_path / "log.txt"
    home = str(tmp_path / "home")
    kaon.run(forcing, home=home, log=str(log))
    kaon.run(forcing, home=home, log=str(log), force=["second"])
    assert log.read_text().split() == ["first", "second", "second"]
    kaon.run(forcing, home=home, log=str(log), no_cache=True)
    assert log.read_text().split()[3:] == ["first", "second"]


@pytest.mark.parametrize(
    ("force", "path", "step_id", "expected"),
    [
        ("train", "train", "train", True),
        ("train", "segments[2].train", "train", True),
        ("segments", "segments[2].train", "train", True),
        ("segments[2].train", "segments[2].train", "train", True),
        ("segments[2].train", "segments[1].train", "train", False),
        ("segments", "retrain[0].segments[1].train", "train", True),
        ("prepare", "segments[2].train", "train", False),
        # An index at some levels only: every item where none is given.
        ("retrain[0].segments.train", "retrain[0].segments[1].train", "train", True),
        ("retrain.segments[1].train", "retrain[2].segments[1].train", "train", True),
        ("retrain.segments[1].train", "retrain[2].segments[0].train", "train", False),
        ("retrain[1].segments", "retrain[1].segments[3].train", "train", True),
        ("retrain[1].segments", "retrain[0].segments[3].train", "train", False),
    ],
)
def test_policy_matches_ids_paths_and_containers(
    force: str, path: str, step_id: str, expected: bool
) -> None:
    assert CachePolicy(force=(force,)).skips_lookup(path, step_id) is expected
    assert CachePolicy(lookup=False).skips_lookup(path, step_id)
    assert not CachePolicy().skips_lookup(path, step_id)
    labels = CachePolicy(force=(force,)).with_labels({"by": "me"})
    assert CachePolicy.from_labels(labels) == CachePolicy(force=(force,))
    assert CachePolicy().with_labels(labels) == {"by": "me"}


@kaon.step(cache=True)
def numbers() -> list[int]:
    return [0, 1]


@kaon.step(cache=True)
def double(x: int) -> int:
    return 2 * x


@kaon.workflow(name="forcing_each")
def forcing_each() -> None:
    with kaon.foreach(numbers(), id="each") as fe:
        double(fe.item)


@pytest.mark.parametrize(
    ("force", "why"),
    [
        ("each[x]", "'each[x]' is not STEP or STEP[INDEX]"),
        ("double.each", "'double.each': no step 'double' in the top level"),
        ("numbers[0]", "'numbers' is a task step: only a foreach or a loop takes an index"),
        ("each.nope", "no step 'nope' in each"),
    ],
)
def test_force_a_name_that_forces_nothing_is_refused_saying_why(
    service: LocalService, force: str, why: str
) -> None:
    """A forced name that can match no step run is refused, as a breakpoint's is: it would
    silently force nothing (the run would take every step from the cache)."""
    with pytest.raises(ParameterError, match=re.escape(why)):
        service.create_run(forcing_each.spec, {}, cache=CachePolicy(force=(force,)))


def test_an_index_written_with_leading_zeros_names_the_same_item(service: LocalService) -> None:
    """``each[01].double`` passed the check and matched nothing (paths say ``each[1]``)."""
    first = service.create_run(forcing_each.spec, {}).id
    service.execute(first)
    policy = CachePolicy(force=("each[01].double",))
    run_id = service.create_run(forcing_each.spec, {}, cache=policy).id
    service.execute(run_id)
    statuses = {r.path: r.status for r in service.store.step_runs(run_id, all_levels=True)}
    assert statuses["each[1].double"] is StepStatus.SUCCEEDED
    assert statuses["each[0].double"] is StepStatus.CACHED
    assert Breakpoint.parse("each[007].double:after") == Breakpoint("each[7].double", "after")


def test_force_a_path_without_indexes_forces_every_item(service: LocalService) -> None:
    """``each.double`` names every item's ``double``, as ``--break each.double`` does."""
    first = service.create_run(forcing_each.spec, {}).id
    service.execute(first)
    run_id = service.create_run(forcing_each.spec, {}, cache=CachePolicy(force=("each.double",))).id
    service.execute(run_id)
    statuses = {r.path: r.status for r in service.store.step_runs(run_id, all_levels=True)}
    assert statuses["numbers"] is StepStatus.CACHED
    assert statuses["each[0].double"] is StepStatus.SUCCEEDED
    assert statuses["each[1].double"] is StepStatus.SUCCEEDED
