"""Steps for the placement tests: what cores a step's code, its threads and its processes see."""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def cores() -> dict[str, list[int]]:
    """The cores this thread, a thread it starts and a process it starts may run on."""
    seen: dict[str, list[int]] = {"step": sorted(os.sched_getaffinity(0))}
    thread = threading.Thread(target=lambda: seen.update(thread=sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    code = "import os; print(sorted(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen["process"] = eval(out.stdout)  # a list of ints printed by Python itself
    return seen
