"""Run ids stay unique without coordination when thousands are made in one second."""

from __future__ import annotations

import time

import pytest

from kaon.engine import operations


def test_ids_made_in_the_same_second_do_not_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "strftime", lambda *_: "20261202-063000")  # one second
    made = [operations.new_run_id() for _ in range(20_000)]
    # 24 random bits gave about 12 collisions here; 48 bits give none (p ~ 1e-6)
    assert len(set(made)) == len(made)
    assert sorted(made)[0].startswith("20261202-063000-")
