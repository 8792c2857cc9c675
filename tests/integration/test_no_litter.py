"""`kaon run` of the suite's heaviest step types leaves the repository as it found it.

The workflow (``heavy_flow.yaml``) runs, from the repository's root as a user would, a
notebook (papermill starts an ipykernel), a Spark job that creates a database (Spark SQL then
makes its warehouse), an R script, SQL on DuckDB, a container and a shell step, on the step
type tests' own files. Afterwards no path may have appeared in the repository and no file in
it may have changed, git-ignored or not: ``spark-warehouse/``, ``metastore_db/``,
``derby.log`` and ``kernel-ipc-*`` sockets are litter like any other file. The check walks the
file system rather than reading ``git status``: git lists neither empty folders (Spark's
``spark-warehouse/<db>.db/``) nor sockets (the kernel's). Python's own bytecode caches
(``__pycache__``), which any import may write, are one exception; the virtualenv and the test
tools' caches (``.mypy_cache``, ``.hypothesis``...), which the suite's other tests write
meanwhile, are the other.

The run's temporary folder (``TMPDIR``) is checked too: the step types' scratch folders (the
notebooks' work folders, the Spark session's) are removed when the worker ends, which it does
with ``os._exit`` (no ``atexit``). Only the engines' lock folder, meant to outlive a run,
remains.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOW = Path(__file__).with_name("heavy_flow.yaml")
IMAGE = "localhost/kaon-litter-busybox:test"  # named by heavy_flow.yaml
TOOLS = ("sh", "echo")
# Not the run's: git's folder, the virtualenv, and the test tools' caches, which the suite's
# other tests write while this one runs (pytest-xdist runs two test files at a time).
NOT_SEEN = frozenset(
    {".git", ".venv", ".mypy_cache", ".pytest_cache", ".hypothesis", ".ruff_cache"}
)


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``root`` but those of :data:`NOT_SEEN`: regular files with (size,
    mtime), the rest (folders, sockets, links, fifos) with None. Symbolic links are not
    followed."""
    found: dict[str, tuple[int, int] | None] = {}
    for folder, dirs, files in os.walk(root):
        if folder == str(root):
            dirs[:] = [name for name in dirs if name not in NOT_SEEN]
            files = [name for name in files if name != ".git"]  # a worktree's .git file
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # gone between the listing and now
                continue
            is_file = not os.path.islink(path) and os.path.isfile(path)
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns) if is_file else None
    return found


def _litter(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths that appeared, and files that changed, between two snapshots."""
    changed = [
        path
        for path, stat in after.items()
        if path not in before or (stat is not None and before[path] != stat)
    ]
    return sorted(path for path in changed if "__pycache__" not in Path(path).parts)


@pytest.fixture(scope="module")
def tools_installed() -> None:
    missing = [tool for tool in ("java", "Rscript", "podman", "busybox") if not shutil.which(tool)]
    if missing:  # `make test` installs them: without them this test fails, never skips
        pytest.fail(f"missing {', '.join(missing)} (make test installs the Debian packages)")


@pytest.fixture(scope="module")
def image(tools_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The container step's busybox image, imported from a local root file system."""
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    shutil.copy(str(shutil.which("busybox")), root / "bin" / "busybox")
    for tool in TOOLS:
        (root / "bin" / tool).symlink_to("busybox")
    archive = root.parent / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    subprocess.run(["podman", "import", str(archive), IMAGE], check=True, capture_output=True)
    yield IMAGE
    subprocess.run(["podman", "rmi", "--force", IMAGE], check=False, capture_output=True)


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAON_")}
    return {
        **env,
        "KAON_HOME": str(tmp_path / "home"),  # the store: outside the repository
        "TMPDIR": str(tmp_path / "tmp"),
        # This machine's Podman needs runc and ulimits below the worker's (see test_container).
        "KAON_PODMAN_ARGS": "--runtime runc",
        "KAON_PODMAN_RUN_ARGS": "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096",
    }


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_heaviest_step_types_leave_no_litter(image: str, tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    before = _snapshot(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "kaon", "run", "--json", os.path.relpath(FLOW, ROOT)],
        cwd=ROOT,  # from the repository's root, as `kaon run examples/...` is documented
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=150,
    )
    after = _snapshot(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _litter(before, after) == []
    run = json.loads(proc.stdout)
    assert run["status"] == "succeeded" and run["tasks"] == {"succeeded": 8}
    steps = {step["path"]: step for step in run["steps"]}
    assert steps["analysis"]["outputs"]["n_adults"]["value"] == 2
    warehouse = str(steps["warehouse"]["outputs"]["return"]["value"]).removeprefix("file:")
    assert not Path(warehouse).is_relative_to(ROOT), warehouse
    left = sorted(p.name for p in (tmp_path / "tmp").iterdir())
    assert left == [f"kaon-engines-{os.getuid()}"], left


def test_the_check_sees_what_git_status_does_not(tmp_path: Path) -> None:
    """An empty folder (as Spark's warehouse makes), a socket (as a kernel leaves) and a
    changed file are all litter; a bytecode cache is not."""
    import socket

    (tmp_path / "kept.txt").write_text("a")
    before = _snapshot(tmp_path)
    (tmp_path / "spark-warehouse" / "kaon_litter_check.db").mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "kernel-ipc-1"))
        (tmp_path / "kept.txt").write_text("ab")
        (tmp_path / "__pycache__").mkdir()
        (tmp_path / "__pycache__" / "flow.cpython-312.pyc").write_bytes(b"")
        assert _litter(before, _snapshot(tmp_path)) == [
            "kept.txt",
            "kernel-ipc-1",
            "spark-warehouse",
            "spark-warehouse/kaon_litter_check.db",
        ]
    finally:
        server.close()
