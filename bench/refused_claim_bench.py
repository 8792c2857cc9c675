"""An engine's claiming pass (``Engine._claim``, every 0.25 s in a server) over the queue
heads of many workflows that their run strategy refuses: ``--workflows`` ``sequential``
workflows, each with one run another engine holds and ``--queued`` pending behind it, the
server's admission callback (``kaon.server_parts.admission``) asked as in a server.

    python bench/refused_claim_bench.py [--workflows 2000] [--queued 10] [--passes 4]

prints one JSON line: ms per pass and the statements each pass sends (the first pass asks
about every head; the next ones remember the refusals, see ``kaon.engine.refusals``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kaon import server_parts
from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import DefinitionRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.sql import SQLStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--queued", type=int, default=10)
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{folder / 'kaon.db'}")
    assert isinstance(store, SQLStore)
    registry = SQLRegistryStore(store)
    now = time.time()
    batch = WriteBatch()
    for n in range(args.workflows):
        name = f"wf{n:05d}"
        batch.definitions.append(DefinitionRecord(f"h{n}", name, {}, "", now))
        held = RunRecord(
            f"{name}-0",
            name,
            f"h{n}",
            RunStatus.RUNNING,
            created_at=0,
            owner="another-engine",
            lease_until=now + 3600,
        )
        batch.runs.append(held)
        for q in range(1, args.queued + 1):
            batch.runs.append(
                RunRecord(f"{name}-{q}", name, f"h{n}", RunStatus.PENDING, created_at=q)
            )
    store.write(batch)
    for n in range(args.workflows):
        name = f"wf{n:05d}"
        registry.add_version(VersionRecord(name, 0, f"h{n}", "", "b", now, "b"), activate=True)
        registry.update_workflow(name, now, properties={"run_strategy": "sequential"})
    admit = server_parts.admission(store)
    artifacts = open_artifact_store(str(folder / "artifacts"))
    engine = Engine(store, InlineExecutor(), artifacts, owner="bench", tune_collector=False)
    passes, statements = [], []
    for _ in range(args.passes):
        with store.reads_seen() as seen:
            started = time.perf_counter()
            engine._claim(admit, 1000)
            passes.append(round((time.perf_counter() - started) * 1000, 1))
        statements.append(len(seen))
        assert not engine.runs
    engine.close()
    store.close()
    shown = {"workflows": args.workflows, "pass_ms": passes, "statements": statements}
    print(json.dumps(shown))


if __name__ == "__main__":
    main()
