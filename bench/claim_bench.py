"""What an engine's claiming pass reads with a long backlog: ``--pending`` pending runs over
``--workflows`` workflows (and ``--finished`` finished runs of history), and the pages of
claimable runs a pass asks for: the first page, the fair-share pass (up to 8 pages of 50, each
skipping the workflows seen), a page after a key in the middle of the backlog.

    python bench/claim_bench.py [--pending 20000] [--workflows 2000] [--finished 0] [--postgres]

prints one JSON line: ms per read (best of 5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from kaon.engine.engine import FAIR_PAGE, FAIR_PAGES
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, StateStore, WriteBatch, claim_key


def _best_ms(read: Callable[[], Any], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _fair_share(store: StateStore) -> int:
    seen: set[str] = set()
    for _ in range(FAIR_PAGES):
        page = store.claimable_runs(limit=FAIR_PAGE, skip_workflows=sorted(seen))
        seen.update(r.workflow for r in page)
        if len(page) < FAIR_PAGE:
            break
    return len(seen)


def _measure(url: str, pending: int, workflows: int, finished: int) -> dict[str, Any]:
    store = open_store(url)
    for start in range(0, finished + pending, 5000):
        batch = WriteBatch()
        for n in range(start, min(start + 5000, finished + pending)):
            done = n < finished
            batch.runs.append(
                RunRecord(
                    f"r{n:08d}",
                    f"wf{n % workflows:05d}",
                    "h",
                    RunStatus.SUCCEEDED if done else RunStatus.PENDING,
                    created_at=float(n),
                    ended_at=float(n) + 1 if done else None,
                )
            )
        store.write(batch)
    middle = store.claimable_runs(limit=pending // 2)[-1]
    shown = {
        "store": url.split(":", 1)[0].split("+", 1)[0],
        "pending": pending,
        "workflows": workflows,
        "finished": finished,
        "first_page_ms": round(_best_ms(lambda: store.claimable_runs(limit=50)), 2),
        "fair_share_pass_ms": round(_best_ms(lambda: _fair_share(store)), 2),
        "page_after_middle_ms": round(
            _best_ms(lambda: store.claimable_runs(limit=50, after=claim_key(middle))), 2
        ),
    }
    store.close()
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=20_000)
    parser.add_argument("--workflows", type=int, default=2_000)
    parser.add_argument("--finished", type=int, default=0)
    parser.add_argument("--postgres", action="store_true", help="On a throwaway cluster.")
    args = parser.parse_args()
    if args.postgres:
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            print(json.dumps(_measure(url, args.pending, args.workflows, args.finished)))
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/kaon.db"
        print(json.dumps(_measure(url, args.pending, args.workflows, args.finished)))


if __name__ == "__main__":
    main()
