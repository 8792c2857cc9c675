"""The audit trail filtered by the id of the token that acted (``GET /audit?token_id=``,
``RemoteService.audit(token_id=...)``, ``kaon audit --token-id``): entries carry it, but
only the actor's name could be filtered, and token names are not unique (two live ``ci``
tokens while a secret rolls over). The filter is a range of an index, not a scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kaon.api.deps import Services
from kaon.cli.main import app
from kaon.service.remote import RemoteService

FLOW = "name: {name}\nsteps:\n  - id: a\n    shell: echo hi\n"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_the_audit_trail_filters_by_token_id(
    client: Any, services: Services, tokens: dict[str, str], tmp_path: Path
) -> None:
    old, old_secret = services.auth.create_token("ci", "owner", ["ml"])
    new, new_secret = services.auth.create_token("ci", "owner", ["ml"])
    for name, secret in (("one", old_secret), ("two", new_secret), ("three", old_secret)):
        body = {"source": FLOW.format(name=name), "file_name": f"{name}.yaml"}
        assert client.post("/workflows", json=body, headers=_bearer(secret)).is_success
    admin = _bearer(tokens["admin"])
    both = client.get("/audit", params={"actor": "ci"}, headers=admin).json()
    assert {e["token_id"] for e in both if e["action"] == "workflow.push"} == {old.id, new.id}
    mine = client.get("/audit", params={"token_id": old.id}, headers=admin).json()
    assert [e["target"] for e in mine] == ["workflow:one", "workflow:three"]
    assert {e["token_id"] for e in mine} == {old.id}
    assert client.get("/audit", params={"token_id": "nope"}, headers=admin).json() == []

    with RemoteService(
        "http://testserver", token=tokens["admin"], transport=client._transport
    ) as remote:
        found = remote.audit(token_id=new.id)
    assert [e.target for e in found] == ["workflow:two"]

    home = str(Path(services.settings.home))
    shown = CliRunner().invoke(
        app, ["audit", "--token-id", old.id, "--home", home, "--json"], env={"KAON_URL": ""}
    )
    assert shown.exit_code == 0, shown.output
    assert [e["target"] for e in json.loads(shown.output)] == ["workflow:one", "workflow:three"]


def test_the_token_filter_reads_an_index(services: Services) -> None:
    import sqlalchemy as sa

    from kaon.store import schema_registry as r

    store = services.store
    stmt = sa.select(r.audit).where(r.audit.c.token_id == "t", r.audit.c.id > 0)
    with store.reading() as conn:  # type: ignore[attr-defined]
        text = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + text)]
    assert any("USING INDEX ix_audit_token" in line for line in plan), plan


def test_entries_written_before_get_their_token_id(tmp_path: Path) -> None:
    """Revision 0022 fills the column in from each entry's ``data``."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from kaon.store import migrations
    from kaon.store._engines import WRITE_OPTION, create_store_engine

    engine, _ = create_store_engine(f"sqlite:///{tmp_path / 'm.db'}")
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    insert = "INSERT INTO audit (at, actor, action, target, data) VALUES (1, 'ci', 'x', 't', '{}')"
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0022_firings_expiry")
            for data in ('{"token_id": "tok-1"}', "{}", '{"token_id": "tok-2", "k": 1}'):
                conn.execute(sa.text(insert.replace("'{}'", f"'{data}'")))
            command.upgrade(config, "head")
            found = conn.execute(sa.text("SELECT token_id FROM audit ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in found] == ["tok-1", None, "tok-2"]
