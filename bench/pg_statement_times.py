"""The PostgreSQL server's time per statement of a chain's writes, from its start to its end.

    python bench/pg_statement_times.py [--steps 4000] [--workflow W2]

runs W1 (a chain of no-op steps) through the engine on a throwaway cluster that logs the
duration of every statement (``log_min_duration_statement = 0``), then reads the log. Prints
one JSON line per prepared statement of the store's write path: its SQL (abridged), how many
times it ran, and its mean duration in milliseconds over each tenth of the chain, in order. A
statement whose plan scans rows of earlier steps shows durations that grow from one tenth to
the next; a plan that finds its row by key stays flat. ``--workflow W2`` runs the foreach of
10,000 items instead of the chain.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import defaultdict

from engine_bench import WORKFLOWS, chain
from pg_cluster import pg_cluster_logged

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.store import open_store

_DURATION = re.compile(r"duration: ([\d.]+) ms\s+execute (kaon_w\d+): (.*)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4000, help="W1's chain length")
    parser.add_argument("--workflow", default="W1", choices=["W1", "W2"])
    args = parser.parse_args()
    with pg_cluster_logged("log_min_duration_statement=0") as (url, log):
        store = open_store(url)
        home = tempfile.mkdtemp(prefix="kaon-bench-")
        engine = Engine(store, create_executor("inline"), open_artifact_store(f"{home}/a"))
        engine.start()
        spec, _steps = chain(args.steps) if args.workflow == "W1" else WORKFLOWS["W2"]()
        run = create_run(store, spec, {})
        engine.run_until_done(run.id)
        engine.close()
        store.close()
        durations: dict[str, list[float]] = defaultdict(list)
        sql: dict[str, str] = {}
        for line in log.read_text(errors="replace").splitlines():
            found = _DURATION.search(line)
            if found is not None:
                durations[found[2]].append(float(found[1]))
                sql[found[2]] = found[3]
    for name, times in sorted(durations.items(), key=lambda item: -sum(item[1])):
        if len(times) < 10:
            continue  # not a statement of every step
        tenth = len(times) // 10
        means = [sum(times[i * tenth : (i + 1) * tenth]) / tenth for i in range(10)]
        print(
            json.dumps(
                {
                    "statement": sql[name][:90],
                    "runs": len(times),
                    "ms_by_tenth": [round(m, 3) for m in means],
                }
            )
        )


if __name__ == "__main__":
    main()
