"""What choosing the runs past retention costs with a long history: ``--finished`` finished
runs over ``--workflows`` workflows, the older half past the retention age, and
``StateStore.expired_runs`` asked for a batch (``--limit``) keeping the ``--keep`` newest of
each workflow, as the server's retention pass (``kaon server --retention``) and ``kaon gc
--runs-older-than`` ask.

    python bench/retention_bench.py --finished 200000 --workflows 2000 --keep 10 [--postgres]

prints one JSON line: ms per call (best of 5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, WriteBatch


def _measure(url: str, finished: int, workflows: int, keep: int, limit: int) -> None:
    store = open_store(url)
    for start in range(0, finished, 20_000):
        runs = [
            RunRecord(
                f"r{n:08d}",
                f"wf{n % workflows}",
                "h",
                RunStatus.SUCCEEDED,
                params={"n": n},
                created_at=float(n),
                ended_at=float(n) + 0.5,
            )
            for n in range(start, min(start + 20_000, finished))
        ]
        store.write(WriteBatch(runs=runs))
    times = []
    for _ in range(5):
        began = time.perf_counter()
        found = store.expired_runs(before=finished / 2, keep_last=keep, limit=limit)
        times.append((time.perf_counter() - began) * 1000)
    store.close()
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    shown = {
        "store": dialect,
        "finished": finished,
        "found": len(found),
        "ms": round(min(times), 2),
    }
    print(json.dumps(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", type=int, default=200_000)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    sizes = (args.finished, args.workflows, args.keep, args.limit)
    if args.postgres:
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            _measure(url, *sizes)
    else:
        _measure(f"sqlite:///{tempfile.mkdtemp()}/kaon.db", *sizes)


if __name__ == "__main__":
    main()
