"""The pages each commit of a chain writes to a SQLite store's write-ahead log, by table.

Every page a commit changes is a frame of the log, written with two system calls and
checksummed; a chain commits once per step, so these pages are most of its write cost.

    python bench/commit_pages.py [--steps 400]

runs W1 (a chain of no-op steps) through the engine on a fresh store, with the store's
checkpoint thread kept idle so the log keeps every frame, reads the frame headers of the log
(a commit's last frame records the database size) and names each page's table or index with
SQLite's ``dbstat``. Prints one JSON line: the mean pages per commit over the middle of the
chain, and that mean per table or index (``sqlite_schema`` is the file's header page, written
when the file grows).
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import struct
import tempfile
from pathlib import Path

from engine_bench import chain

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.status import RunStatus
from kaon.store import _lite, open_store


def commits(wal: Path) -> list[list[int]]:
    """The page numbers of each commit in the log, oldest first."""
    data = wal.read_bytes()
    size = struct.unpack(">I", data[8:12])[0]
    found: list[list[int]] = []
    pages: list[int] = []
    for offset in range(32, len(data) - 24 - size + 1, 24 + size):
        page, database_size = struct.unpack(">II", data[offset : offset + 8])
        pages.append(page)
        if database_size:  # the commit's last frame
            found.append(pages)
            pages = []
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    _lite.CHECKPOINT_EVERY_S = 3600.0  # the log keeps every frame
    home = Path(tempfile.mkdtemp(prefix="kaon-pages-"))
    path = home / "kaon.db"
    store = open_store(f"sqlite:///{path}")
    keep = sqlite3.connect(path)  # open to the end: closing the store must not checkpoint
    keep.execute("SELECT count(*) FROM runs").fetchone()
    engine = Engine(store, create_executor("inline"), open_artifact_store(str(home / "a")))
    spec, steps = chain(args.steps)
    run = create_run(store, spec, {})
    engine.start()
    status = engine.run_until_done(run.id)
    engine.close()
    store.close()
    assert status is RunStatus.SUCCEEDED
    middle = commits(Path(f"{path}-wal"))[-steps + steps // 4 : -steps // 4]
    names = dict(keep.execute("SELECT pageno, name FROM dbstat"))
    keep.close()
    by_name: collections.Counter[str] = collections.Counter()
    for pages in middle:
        by_name.update(names.get(page, "?") for page in pages)
    result = {
        "steps": steps,
        "commits": len(middle),
        "pages_per_commit": round(sum(map(len, middle)) / len(middle), 2),
        "by_table": {name: round(n / len(middle), 2) for name, n in by_name.most_common()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
