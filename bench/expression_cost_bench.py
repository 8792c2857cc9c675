"""Expression cost model calibration: estimated against measured time, and the check's overhead.

For a set of expression shapes (comprehensions, nested comprehensions, string and list
concatenation, ``string()``, ``matches``, ``in``) at growing input sizes, evaluates each with
a generous budget and prints one JSON line per case: the estimate (ms), the measured wall time
(ms, best of ``--repeat``) and their ratio. A ratio below 1 means the estimate is an upper
bound, as it must be. The last line is the cost check's overhead on a typical small
expression (microseconds per evaluation, estimate included).

    python bench/expression_cost_bench.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kaon.model.expression_cost import ExpressionBudget
from kaon.model.expressions import compile_expression

CASES = (
    ("params.L.map(x, x + 1)", (250, 500, 1000, 2000)),
    ("params.L.filter(x, x >= 0)", (250, 500, 1000, 2000)),
    ("params.L.exists(x, x < 0)", (1000, 10_000, 50_000)),
    ("params.L.all(a, params.L.exists(b, b == a))", (50, 100, 200)),
    ("params.L.map(a, params.L.map(b, a + b)).size()", (20, 40, 80)),
    ("params.L + params.L", (10_000, 100_000)),
    ("size(params.S + params.S)", (100_000, 1_000_000)),
    ("string(params.L)", (1000, 10_000)),
    ("params.S.matches('a+b')", (10_000, 1_000_000)),
    ("-1 in params.L", (10_000, 100_000)),
)
GENEROUS = ExpressionBudget(time_ms=600_000, max_bytes=1 << 34)


def _params(n: int) -> dict[str, Any]:
    return {"params": {"L": list(range(n)), "S": "a" * n}}


def _best(compiled: Any, variables: dict[str, Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        compiled.evaluate(variables, GENEROUS)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for source, sizes in CASES:
        compiled = compile_expression(source)
        for n in sizes:
            variables = _params(n)
            estimated = compiled.estimate(variables, GENEROUS).time_ns / 1e6
            measured = _best(compiled, variables, args.repeat)
            row = {"expression": source, "n": n, "estimated_ms": round(estimated, 3)}
            row |= {"measured_ms": round(measured, 3), "ratio": round(measured / estimated, 3)}
            print(json.dumps(row), flush=True)
    small = compile_expression('"model-" + string(item) + params.x', variables=["item"])
    variables = {"item": "eu", "params": {"x": "a"}, "steps": {}, "run": {}}
    count = 20_000
    started = time.perf_counter()
    for _ in range(count):
        small.evaluate(variables)
    per_eval = (time.perf_counter() - started) / count * 1e6
    print(json.dumps({"small_expression_us_per_evaluation": round(per_eval, 1)}))


if __name__ == "__main__":
    main()
