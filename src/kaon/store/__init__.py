"""Where Kaon's state lives: the :class:`StateStore` interface and how to open one.

``open_store`` imports the SQL backend lazily, so code that only needs the interface (the
engine) does not load SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path

from kaon.store.base import StateStore, WriteBatch

__all__ = ["StateStore", "WriteBatch", "default_store_url", "open_store"]


def open_store(url: str, *, create: bool = True) -> StateStore:
    """Open (and migrate to the current schema) the state store at ``url``.

    With ``create`` (commands that write: run, push, server) a missing store is created;
    without it (commands that only read) nothing is created or altered where there is no
    Kaon store: a missing SQLite file or an empty database raises
    :class:`~kaon.errors.StoreNotFoundError`. Either way a database that holds tables but
    no Kaon schema raises :class:`~kaon.errors.ForeignDatabaseError` before anything is
    written to it.

    ``sqlite:///path/to/kaon.db`` (parent folders are created), ``sqlite://`` or
    ``sqlite:///:memory:`` (in memory, shared by the threads of this process), or
    ``postgresql+psycopg://user@host/db`` (``postgresql://`` uses psycopg too).

    Raises :class:`~kaon.errors.ConfigurationError` for an unsupported URL,
    :class:`~kaon.errors.SchemaVersionError` when a newer Kaon migrated the database, and
    :class:`~kaon.errors.StoreError` when it cannot be opened.
    """
    from kaon.store.sql import SQLStore

    return SQLStore(url, create=create)


def default_store_url(home: Path) -> str:
    """The URL of the embedded SQLite store under Kaon's home folder: ``<home>/kaon.db``."""
    return f"sqlite:///{(home.expanduser().absolute() / 'kaon.db').as_posix()}"
