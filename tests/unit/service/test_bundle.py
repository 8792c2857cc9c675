"""Pushing a workflow with the files beside it (sibling modules, SQL files, notebooks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kaon.api.deps import Services
from kaon.errors import DefinitionError
from kaon.model.status import RunStatus
from kaon.service import bundle
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = """
import kaon
import helpers


@kaon.step
def scaled(n: int) -> int:
    return helpers.scale(n)


@kaon.workflow
def bundled(n: int = 2) -> None:
    total = scaled(n)
    kaon.task("sql", {"file": "plus_one.sql", "result": "scalar"}, id="plus", inputs={"x": total})
"""


def _project(folder: Path, factor: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flow.py").write_text(FLOW)
    (folder / "helpers.py").write_text(f"def scale(n):\n    return n * {factor}\n")
    (folder / "plus_one.sql").write_text("select $x + 1 as answer")
    (folder / ".secret.env").write_text("TOKEN=no")
    (folder / "model.bin").write_bytes(b"\x00\x01")
    return folder / "flow.py"


def test_collect_bundle_takes_text_siblings_only(tmp_path: Path) -> None:
    flow = _project(tmp_path / "p", 3)
    source, files = bundle.read_push(str(flow))
    assert source == FLOW
    assert sorted(files) == ["helpers.py", "plus_one.sql"]


def test_bundle_size_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = _project(tmp_path / "p", 3)
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", 10)
    with pytest.raises(DefinitionError, match="exceed 10 bytes"):
        bundle.read_push(str(flow))


def test_pushed_bundle_runs_without_the_original_folder(services: Services, tmp_path: Path) -> None:
    flow = _project(tmp_path / "project", 3)
    source, files = bundle.read_push(str(flow))
    shutil.rmtree(flow.parent)  # the server has only what was pushed
    registry = services.registry
    pushed = registry.push(source, "flow.py", LOCAL_PRINCIPAL, files=files)
    run = registry.start_run("bundled", {"n": 5}, LOCAL_PRINCIPAL)
    assert services.runs.execute(run.id) is RunStatus.SUCCEEDED
    steps = {s.path: s for s in services.runs.run_detail(run.id).steps}
    assert steps["scaled"].outputs["return"].value == 15  # helpers.py came with the push
    assert steps["plus"].outputs["return"].value == 16  # and so did plus_one.sql
    # A changed sibling module is a new version; the same bundle again is a no-op.
    again = registry.push(source, "flow.py", LOCAL_PRINCIPAL, files=files)
    assert not again.created and again.version == pushed.version
    changed = dict(files, **{"helpers.py": "def scale(n):\n    return n * 4\n"})
    assert registry.push(source, "flow.py", LOCAL_PRINCIPAL, files=changed).version == 2


def test_unsafe_bundle_names_are_rejected(services: Services) -> None:
    with pytest.raises(DefinitionError, match="bare, safe file name"):
        services.registry.push(FLOW, "flow.py", LOCAL_PRINCIPAL, files={"../evil.py": "x = 1"})


@pytest.mark.parametrize(
    ("files", "field", "message"),
    [
        ({"tool.exe": "x"}, "files.tool.exe", "not a file a step reads as source"),
        ({"m" * 300 + ".py": "x = 1"}, "files", "longer than 200 characters"),
        (
            {f"m{n}.txt": "" for n in range(bundle.MAX_BUNDLE_FILES + 1)},
            "files",
            f"the limit is {bundle.MAX_BUNDLE_FILES:,} files",
        ),
    ],
    ids=["suffix", "long-name", "too-many"],
)
def test_a_bundle_push_could_not_make_is_refused_naming_the_entry(
    services: Services, files: dict[str, str], field: str, message: str
) -> None:
    """Only what ``kaon push`` collects is taken: source suffixes, names a file system holds,
    a bounded number of files (a server kept 100,000 empty files of one push on disk)."""
    with pytest.raises(DefinitionError) as caught:
        services.registry.push(FLOW, "flow.py", LOCAL_PRINCIPAL, files=files)
    problems = [(p.location.field, p.message) for p in caught.value.problems]
    assert any(f == field and message in m for f, m in problems), problems
    assert not list((services.settings.home / "sources").glob("*"))
