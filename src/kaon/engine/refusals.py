"""What a claiming pass remembers of the queue heads the run strategies refused.

A server's engine claims every 0.25 s, and asked the run strategy about the head (first
waiting run) of every workflow's queue on each pass: one statement per head. With 2,000
sequential workflows each waiting on an active run, a pass took 0.4 to 1.2 s, holding the
engine's turn lock all along, to refuse the same heads again. A refusal is now remembered,
per workflow and for its head: a pass leaves that workflow's runs out of the pages it reads
(they are not read, decoded or asked about), until

* a run of the workflow that this engine held ends or is let go (what frees a place in its
  queue, on a single server always this engine: the head is asked again on the next pass),
* the workflow's head changes (a run ahead of it arrived, or the head was cancelled: the
  new head is asked at once),
* what the strategies decide by changes (a workflow's properties, an unblock), when the
  admission callback says so (:class:`AdmissionChanges`: a server's does, checked at most
  once a second),
* or :data:`REFUSAL_TTL_S` (spread over up to half as much again, so the heads remembered
  together are not all asked again in the same pass) has passed: what this engine does
  not see (a run another replica held ended, a run cancelled by the API) takes effect
  within it; so does a run of the workflow whose engine lost its lease without dying
  (an engine found dead makes every head be asked again).

What still grows with the waiting workflows is the database's walk past their runs in the
claiming index (a ``NOT IN`` of their names): about 50 ms a pass on SQLite with 2,000
workflows of 11 open runs each, where the pass took 360 to 960 ms.
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol, runtime_checkable

REFUSAL_TTL_S: Final = 10.0
"""The longest a refusal is remembered (up to 1.5 times as long, spread by workflow)."""


@runtime_checkable
class AdmissionChanges(Protocol):
    """An admission callback that says when what it decides by changed."""

    def changes(self) -> object:
        """A value that differs whenever something the run strategies decide by changed
        (a workflow's properties, an unblock): the refusals remembered are forgotten."""


class RefusalMemory:
    """Queue heads refused by their run strategy, by workflow: ``(run id, asked again at)``."""

    def __init__(self, ttl_s: float = REFUSAL_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._heads: dict[str, tuple[str, float]] = {}
        self._next_sweep = 0.0
        self._changes: object = None

    def __len__(self) -> int:
        return len(self._heads)

    def refused(self, workflow: str, run_id: str, now: float) -> None:
        """Remember that ``run_id``, the head of ``workflow``'s queue, was refused at ``now``."""
        spread = (zlib.crc32(workflow.encode("utf-8", "replace")) % 1000) / 2000.0
        self._heads[workflow] = (run_id, now + self.ttl_s * (1.0 + spread))

    def remembered(self, workflow: str, run_id: str, now: float) -> bool:
        """Whether ``run_id`` is the head of ``workflow``'s queue refused lately (then the
        pass skips it without asking)."""
        found = self._heads.get(workflow)
        if found is None:
            return False
        if found[0] == run_id and now < found[1]:
            return True
        del self._heads[workflow]  # another head, or time to ask again
        return False

    def waiting(self, now: float) -> set[str]:
        """The workflows whose refusal still holds: a pass leaves their runs out of the
        pages it reads (the skip list), so it neither reads nor decodes them."""
        return {w for w, (_, until) in self._heads.items() if now < until}

    def forget(self, workflow: str) -> None:
        """A run of ``workflow`` this engine held ended or was let go: ask its head again."""
        self._heads.pop(workflow, None)

    def follow(self, changes: object) -> None:
        """Forget every refusal when ``changes`` (:meth:`AdmissionChanges.changes`)
        differs from the last value seen."""
        if changes != self._changes:
            self._changes = changes
            self._heads.clear()

    def clear(self) -> None:
        """Ask every head again (runs of dead engines were released)."""
        self._heads.clear()

    def sweep(self, now: float) -> None:
        """Drop the refusals past their time (at most once per TTL): the memory holds the
        workflows waiting now, not every workflow that ever waited."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.ttl_s
        self._heads = {w: head for w, head in self._heads.items() if now < head[1]}
