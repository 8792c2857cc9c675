"""A request with an ``Idempotency-Key`` that fails with an unexpected error (not a
KaonError: a defect, a library's own exception) gives its reservation back at once: the
client's retry with the same key is handled (with the same reservation, so a run the first
attempt may have created is not created twice), where it got 409 "still being handled" for
120 s. Of two retries, one takes the reservation over; the other still gets 409."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import InvalidActionError
from kaon.service.idempotency import Idempotency
from kaon.store import open_store
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore


@pytest.fixture
def idempotency(tmp_path: Path) -> Iterator[Idempotency]:
    store = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    assert isinstance(store, SQLStore)
    yield Idempotency(SQLRegistryStore(store))
    store.close()


def test_a_retry_after_an_unexpected_error_is_handled_with_the_same_reservation(
    idempotency: Idempotency,
) -> None:
    seen: list[dict[str, Any]] = []

    def failing(reservation: dict[str, Any]) -> dict[str, Any]:
        seen.append(reservation)
        raise RuntimeError("a defect after the run was created")

    with pytest.raises(RuntimeError):
        idempotency.once("tok", "k", {"a": 1}, {"run_id": "first"}, failing)

    def working(reservation: dict[str, Any]) -> dict[str, Any]:
        seen.append(reservation)
        return {"id": reservation["run_id"]}

    answer = idempotency.once("tok", "k", {"a": 1}, {"run_id": "second"}, working)
    assert answer == ({"id": "first"}, False)
    assert seen == [{"run_id": "first"}, {"run_id": "first"}]
    assert idempotency.once("tok", "k", {"a": 1}, {"run_id": "third"}, working) == (
        {"id": "first"},
        True,
    )


def test_one_retry_takes_a_released_reservation_over(idempotency: Idempotency) -> None:
    def failing(reservation: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        idempotency.once("tok", "k", {"a": 1}, {"n": 1}, failing)
    refused: list[Exception] = []

    def retry(reservation: dict[str, Any]) -> dict[str, Any]:
        try:  # a second retry while the first is handled
            idempotency.once("tok", "k", {"a": 1}, {"n": 2}, lambda r: {"twice": True})
        except InvalidActionError as error:
            refused.append(error)
        return {"n": reservation["n"]}

    assert idempotency.once("tok", "k", {"a": 1}, {"n": 3}, retry) == ({"n": 1}, False)
    assert len(refused) == 1 and "still being handled" in str(refused[0])
