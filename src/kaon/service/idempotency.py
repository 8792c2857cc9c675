"""Idempotency keys: a retried request returns the first answer and never repeats the work.

A client sends ``Idempotency-Key: <key>`` with ``POST /runs``, ``POST /signals`` or
``POST /workflows``. Keys belong to the caller (its token): the first request with a key
*reserves* it (with what the work needs to be repeatable, e.g. the id the new run will
have), does the work and records the answer; a retry with the same key and the same request
gets that answer again. A retry with the same key and a different request, or while the
first is still being handled, gets 409. A reservation whose request died mid-way (the server
was killed) is taken over after :attr:`Idempotency.abandon_s` and the work redone with the
same reservation, so a run is still created once. A request that failed with an unexpected
error (not a :class:`~kaon.errors.KaonError`, which refuses before any effect and drops the
key), or whose commit's answer the database lost
(:class:`~kaon.errors.WriteOutcomeUnknownError`), may have had its effect, so its
reservation is kept but *released*: the next request with the key takes it over at once,
with the same reservation (it waited the abandon delay, answered 409 meanwhile). Of
concurrent takers, one wins; the others get 409. Keys are kept :attr:`Idempotency.ttl_s`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kaon.errors import (
    DefinitionError,
    InvalidActionError,
    KaonError,
    Location,
    Problem,
    WriteOutcomeUnknownError,
)
from kaon.service.safety import check_text
from kaon.store.registry import IDEMPOTENCY_RELEASED, IdempotencyRecord, RegistryStore

log = logging.getLogger(__name__)

MAX_KEY = 200

Work = Callable[[dict[str, Any]], dict[str, Any]]
"""Does the work with the reservation; returns the answer's JSON body."""


class Idempotency:
    """Runs work at most once per (caller, key)."""

    def __init__(
        self, registry: RegistryStore, *, ttl_s: float = 86400.0, abandon_s: float = 120.0
    ) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self.abandon_s = abandon_s
        self._pruned_at = 0.0
        self._lock = threading.Lock()

    def once(
        self,
        actor: str,
        key: str | None,
        request: Any,
        reservation: dict[str, Any],
        work: Work,
    ) -> tuple[dict[str, Any], bool]:
        """The answer of ``work`` for this request, and whether it is a replay.

        Without a key, simply does the work. Raises InvalidActionError (409) for a key
        reused with another request or still in progress, DefinitionError (422) for a bad
        key, and what ``work`` raises (the key is then dropped, for a KaonError, or
        released to the next request with it: either way a retry is handled at once)."""
        if key is None:
            return work(reservation), False
        if not key or len(key) > MAX_KEY:
            where = Location(None, field="Idempotency-Key")
            raise DefinitionError(Problem(f"must be 1 to {MAX_KEY} characters", where))
        check_text(key, "Idempotency-Key")
        digest = hashlib.sha256(
            json.dumps(request, sort_keys=True, default=str).encode("utf-8", "replace")
        ).hexdigest()
        now = time.time()
        self._prune(now)
        found = self.registry.idempotency(actor, key)
        if found is None:
            record = IdempotencyRecord(actor, key, digest, 0, reservation, now)
            if not self.registry.reserve_idempotency(record):
                found = self.registry.idempotency(actor, key)
        if found is not None:
            if found.request_hash != digest:
                raise InvalidActionError(
                    "this Idempotency-Key was already used for a different request"
                )
            if found.status > 0:
                return found.response, True
            released = found.status == IDEMPOTENCY_RELEASED
            if not released and now - found.created_at < self.abandon_s:
                raise InvalidActionError(
                    "a request with this Idempotency-Key is still being handled; retry later"
                )
            # Its first request failed or died: redo it the same way, if no retry took it first.
            if not self.registry.retake_idempotency(actor, key, found.created_at, now):
                raise InvalidActionError(
                    "a request with this Idempotency-Key is still being handled; retry later"
                )
            reservation = found.response
        try:
            answer = work(reservation)
        except WriteOutcomeUnknownError:  # committed or not: the retry must find what it made
            self._release(actor, key)
            raise
        except KaonError:
            self.registry.drop_idempotency(actor, key)
            raise
        except Exception:
            self._release(actor, key)
            raise
        self.registry.finish_idempotency(actor, key, 200, answer)
        return answer, False

    def _release(self, actor: str, key: str) -> None:
        """Give a failed request's reservation to the next request with its key (when the
        store cannot be written either, the key is taken over after the abandon delay)."""
        try:
            self.registry.release_idempotency(actor, key)
        except KaonError as error:
            log.warning("could not release Idempotency-Key %r: %s", key, error)

    def _prune(self, now: float) -> None:
        with self._lock:
            if now - self._pruned_at < 3600.0:
                return
            self._pruned_at = now
        self.registry.drop_idempotency("", "", before=now - self.ttl_s)
