"""The SQLite DDL of the schema module, rendered ahead of time for new stores.

Creating a new store from :data:`kaon.store.schema.metadata` with ``create_all`` compiles some
sixty ``CREATE`` statements through SQLAlchemy's DDL compiler on every ``kaon run`` that
starts on a fresh home (most of the time of opening a new store). The statements are the
same every time, so they are rendered once, here, into ``schema_sqlite.sql`` next to this
file (generated, checked in, shipped as package data), and a new SQLite store runs them as
they are (:func:`kaon.store.migrations.create_at_head`). A unit test renders them again and
fails when the two differ. The same command writes ``_sqlite_statements.py``, the store's
statements compiled for SQLite (see :mod:`kaon.store._queries`). After changing the schema or
a statement, regenerate both with::

    python -m kaon.store._ddl
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kaon.store._lite import VERSION_TABLE

if TYPE_CHECKING:
    import sqlalchemy as sa

SCRIPT = Path(__file__).with_name("schema_sqlite.sql")
STATEMENTS = Path(__file__).with_name("_sqlite_statements.py")
SEPARATOR = ";\n\n"  # between statements in the script (no statement contains it)


@functools.cache
def version_table() -> sa.Table:
    """Alembic's own version table: one VARCHAR(32) primary key named <table>_pkc."""
    import sqlalchemy as sa

    return sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )


def render_sqlite() -> tuple[str, ...]:
    """Every statement that creates the schema module's tables, their indexes and the
    version table on SQLite, in ``create_all``'s order (tables by dependency, each followed
    by its indexes)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from kaon.store.schema import metadata

    dialect = sqlite.dialect()  # type: ignore[no-untyped-call]
    statements: list[str] = []
    for table in [*metadata.sorted_tables, version_table()]:
        statements.append(_text(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(_text(CreateIndex(index).compile(dialect=dialect)))
    return tuple(statements)


def _text(compiled: object) -> str:
    return "\n".join(line.rstrip() for line in str(compiled).strip().splitlines())


def script_text(statements: tuple[str, ...]) -> str:
    """The text of ``schema_sqlite.sql`` holding ``statements``."""
    return SEPARATOR.join(statements) + ";\n"


def read_script() -> tuple[str, ...]:
    """The statements of the shipped ``schema_sqlite.sql``."""
    text = SCRIPT.read_text(encoding="utf-8").removesuffix(";\n")
    return tuple(text.split(SEPARATOR))


if __name__ == "__main__":  # pragma: no cover - the developer's regeneration step
    from kaon.store._queries import render_catalogue

    SCRIPT.write_text(script_text(render_sqlite()), encoding="utf-8")
    STATEMENTS.write_text(render_catalogue(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCRIPT} and {STATEMENTS}\n")
