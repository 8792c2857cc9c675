"""How a loop of passes (the trigger loop, the alert sender) reports a failing pass.

A pass that fails because the state store cannot be reached
(:class:`~kaon.errors.StoreUnavailableError`: a database restart, a failover, a network
cut) is no bug: every pass fails the same way until the store is back. Logging each with its
traceback, four times a second for the trigger loop and twice for the alert sender, wrote
about 30 KB of log a second per server while the database was down. So an outage is logged
once when it starts (one line, the store's error), again at most every
:data:`REMIND_EVERY_S` while it lasts, and once when the store answers again; meanwhile the
loop waits longer between passes, doubling from its interval up to :data:`LONGEST_PAUSE_S`.
Any other failure is logged with its traceback, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kaon.errors import StoreUnavailableError

LONGEST_PAUSE_S = 5.0
REMIND_EVERY_S = 60.0


class PassFailures:
    """What one loop met: call :meth:`failed` when a pass raised, :meth:`succeeded` after
    one that did not; each returns how long to wait before the next pass."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what
        self.interval_s = interval_s
        self.clock = clock
        self._down_since: float | None = None
        self._failures = 0
        self._reminded = 0.0

    def failed(self, error: BaseException) -> float:
        """Log ``error`` as the module says; the pause before the next pass."""
        if not isinstance(error, StoreUnavailableError):
            self.log.error("%s failed", self.what, exc_info=error)
            return self.interval_s
        now = self.clock()
        self._failures += 1
        if self._down_since is None:
            self._down_since = self._reminded = now
            self.log.warning("%s: the state store is unavailable, retrying: %s", self.what, error)
        elif now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            self.log.warning(
                "%s: the state store is still unavailable after %.0f s (%d passes failed): %s",
                self.what,
                now - self._down_since,
                self._failures,
                error,
            )
        return min(LONGEST_PAUSE_S, self.interval_s * 2.0 ** (self._failures - 1))

    def succeeded(self) -> None:
        """A pass went through: an outage, if any, is over (logged once)."""
        if self._down_since is not None:
            self.log.info(
                "%s: the state store answers again after %.0f s (%d passes failed)",
                self.what,
                self.clock() - self._down_since,
                self._failures,
            )
        self._down_since = None
        self._failures = 0
