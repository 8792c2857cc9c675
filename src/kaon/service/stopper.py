"""A stop flag a signal handler sets and a follower's wait wakes on."""

from __future__ import annotations

import threading


class Stopper:
    """Something that follows a run until told to stop (Ctrl-C in ``kaon watch``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._event.is_set()

    def stop(self) -> None:
        """Ask it to stop soon (thread- and signal-safe)."""
        self._event.set()

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less when stopped meanwhile."""
        self._event.wait(seconds)
