"""A workflow whose step starts child processes and then waits (for test_process_hygiene)."""

from __future__ import annotations

import os
import subprocess
import time

import kaon


@kaon.step(timeout=float(os.environ.get("KAON_HYGIENE_TIMEOUT", "600")))
def spawn() -> None:
    folder = os.environ["KAON_HYGIENE_DIR"]
    same_group = subprocess.Popen(["sleep", "300"])
    own_session = subprocess.Popen(["sleep", "301"], start_new_session=True)
    with open(os.path.join(folder, "pids.partial"), "w") as handle:
        handle.write(f"{same_group.pid} {own_session.pid}\n")
    os.replace(os.path.join(folder, "pids.partial"), os.path.join(folder, "pids"))
    time.sleep(300)


@kaon.workflow
def hygiene() -> None:
    spawn()
