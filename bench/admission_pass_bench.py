"""An engine claiming pass over the queue heads of many workflows: ``--workflows``
``sequential`` workflows, each with one run active and ``--queued`` pending behind it, and
the server's admission callback (``kaon.server_parts.admission``) asked about every head,
as ``Engine._claim`` does every 0.1 s while it has room. Passes are 1.1 s apart (past the
properties' TTL), as in a server.

    python bench/admission_pass_bench.py [--workflows 2000] [--queued 10] [--passes 4]

prints one JSON line: ms per pass, and the statements a pass sends.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from kaon import server_parts
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
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/kaon.db")
    assert isinstance(store, SQLStore)
    registry = SQLRegistryStore(store)
    now = time.time()
    batch = WriteBatch()
    heads = []
    for n in range(args.workflows):
        name = f"wf{n:05d}"
        batch.definitions.append(DefinitionRecord(f"h{n}", name, {}, "", now))
        batch.runs.append(RunRecord(f"{name}-0", name, f"h{n}", RunStatus.RUNNING, created_at=0))
        for q in range(1, args.queued + 1):
            run = RunRecord(f"{name}-{q}", name, f"h{n}", RunStatus.PENDING, created_at=q)
            batch.runs.append(run)
            if q == 1:
                heads.append(run)
    store.write(batch)
    for n in range(args.workflows):
        name = f"wf{n:05d}"
        registry.add_version(VersionRecord(name, 0, f"h{n}", "", "b", now, "b"), activate=True)
        registry.update_workflow(name, now, properties={"run_strategy": "sequential"})
    admit = server_parts.admission(store)
    passes, statements = [], []
    for _ in range(args.passes):
        time.sleep(server_parts.PROPERTIES_TTL_S + 0.1)
        with store.reads_seen() as seen:
            started = time.perf_counter()
            admitted = sum(admit(run) for run in heads)
            passes.append(round((time.perf_counter() - started) * 1000, 1))
        statements.append(len(seen))
        assert admitted == 0
    store.close()
    shown = {"workflows": args.workflows, "pass_ms": passes, "statements": statements}
    print(json.dumps(shown))


if __name__ == "__main__":
    main()
