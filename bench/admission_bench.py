"""What a run strategy's admission costs with a long queue: one ``sequential`` workflow with
``--queued`` pending runs behind a running one, and ``strategies.admit`` asked about the run
at the queue's head (admitted once the running one ends) and about the last one, as the
engine asks at every claiming pass (and ``kaon show``, the UI, for a waiting run's reason).

    python bench/admission_bench.py --queued 5000 [--postgres]

prints one JSON line: ms per admission of the head and of the tail.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, StateStore, WriteBatch
from kaon.triggers import strategies


def _sequential(_store: StateStore, _name: str) -> dict[str, Any]:
    return {"run_strategy": "sequential"}


def _per_call_ms(store: StateStore, run: RunRecord, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        strategies.admit(store, run, properties=_sequential)
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument(
        "--postgres", action="store_true", help="On a throwaway PostgreSQL cluster."
    )
    args = parser.parse_args()
    if args.postgres:
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            _measure(url, args.queued, args.calls)
    else:
        _measure(f"sqlite:///{tempfile.mkdtemp()}/kaon.db", args.queued, args.calls)


def _measure(url: str, queued: int, calls: int) -> None:
    store = open_store(url)
    runs = [
        RunRecord(f"q{n:07d}", "queued", "h", RunStatus.PENDING, params={"n": n}, created_at=n)
        for n in range(queued + 1)
    ]
    runs[0].status = RunStatus.RUNNING
    store.write(WriteBatch(runs=runs))
    head = _per_call_ms(store, runs[1], calls)
    tail = _per_call_ms(store, runs[-1], calls)
    store.close()
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    shown = {
        "store": dialect,
        "queued": queued,
        "head_ms": round(head, 3),
        "tail_ms": round(tail, 3),
    }
    print(json.dumps(shown))


if __name__ == "__main__":
    main()
