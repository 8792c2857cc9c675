"""When a PostgreSQL connection of the store analyzes ``step_runs`` (see
:mod:`kaon.store._pg_write`): after its 256th write, then four times as far each time, then
every 65,536 writes."""

from __future__ import annotations

from psycopg.adapt import Transformer

from kaon.store._pg_write import ANALYZE_FIRST, ANALYZE_MOST, _Session


def test_a_connection_analyzes_at_growing_intervals_then_at_most_every_65536_writes() -> None:
    session = _Session(Transformer())
    due = [write for write in range(1, 300_000) if session.analysis_due()]
    assert ANALYZE_FIRST == 256 and ANALYZE_MOST == 65_536
    assert due == [256, 1024, 4096, 16_384, 65_536, 131_072, 196_608, 262_144]
