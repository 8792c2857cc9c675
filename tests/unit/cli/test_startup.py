"""Start-up stays light: which modules `kaon --help`, `kaon validate` and `kaon run` import.

Each command runs in a fresh interpreter (as the `kaon` script does); the modules it imported
are written out at exit and checked against what the command must not pay for.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Never needed by these commands: the server, the HTTP client, migrations, CEL's REPL.
SERVER_AND_FRIENDS = {
    "fastapi",
    "uvicorn",
    "starlette",
    "httpx",
    "alembic",
    "prompt_toolkit",
    "pygments",
    "kaon.api",
    "kaon.server",
    "kaon.service.remote",
    "kaon.service.experiments",
    "kaon.store.registry",
    "kaon.triggers.service",
}
STORE_AND_ENGINE = {"sqlalchemy", "kaon.store.sql", "kaon.engine.engine", "kaon.service.local"}
# Not needed to list the commands: the DSL and model behind ``import kaon`` (lazy, PEP 562),
# pickling, YAML, pydantic (typer uses it only to convert given values).
DEFINITIONS = {"kaon.dsl.python", "kaon.model.specs", "cloudpickle", "yaml", "pydantic"}
# Never needed on SQLite: the PostgreSQL dialect (and the asyncpg one it brings).
POSTGRESQL = {"sqlalchemy.dialects.postgresql", "asyncpg", "psycopg"}
# Not needed by a workflow without expressions or YAML: the CEL interpreter and the cost
# model with the syntax tree it walks, the YAML parser.
UNUSED_HERE = {
    "cel",
    "kaon.model.cel_syntax",
    "kaon.model.expression_cost",
    "kaon.model.expression_paths",
    "yaml",
    "kaon.dsl._yaml_nodes",
    "kaon.dsl.yaml_loader",
}
# Never needed to run a step that returns a small value: SQLAlchemy's ORM and extensions, the
# data libraries, the artifact filesystem layer, psutil (the host's memory comes from sysconf).
HEAVY = {"sqlalchemy.orm", "sqlalchemy.ext", "numpy", "pandas", "pyarrow", "fsspec", "psutil"}
# Not needed to show a run's metric values: experiment comparison and its views (pydantic
# models of their own: building them cost a one-step `kaon run` 40-50 ms).
EXPERIMENTS = {"kaon.service._compare", "kaon.service.experiment_views"}

_PROBE = textwrap.dedent(
    """
    import atexit, json, sys

    def _views():  # the typed views whose validator or serializer was built
        from kaon.service.views import View

        seen, todo = set(), [View]
        while todo:
            for sub in todo.pop().__subclasses__():
                seen.add(sub)
                todo.append(sub)
        return [c.__name__ for c in seen if c.__pydantic_complete__]

    def _dump():
        built = _views() if "kaon.service.views" in sys.modules else []
        with open({out!r}, "w") as f:
            json.dump({{"modules": sorted(sys.modules), "views_built": sorted(built)}}, f)

    atexit.register(_dump)
    sys.argv = ["kaon", *{args!r}]
    from kaon.cli.main import main
    main()
    """
)

ONE_STEP = """
import kaon


@kaon.step
def hello() -> int:
    return 1


@kaon.workflow
def one() -> None:
    hello()
"""


def _probe(tmp_path: Path, *args: str) -> dict[str, list[str]]:
    out = tmp_path / "modules.json"
    code = _PROBE.format(out=str(out), args=list(args))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(out.read_text())
    return found


def _imported(tmp_path: Path, *args: str) -> set[str]:
    return set(_probe(tmp_path, *args)["modules"])


def _loaded(modules: set[str], names: set[str]) -> set[str]:
    """Which of ``names`` (packages or modules) were imported."""
    return {n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)}


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "one.py"
    path.write_text(ONE_STEP)
    return path


def test_help_imports_neither_rich_nor_the_store_nor_cel(tmp_path: Path) -> None:
    modules = _imported(tmp_path, "--help")
    unwanted = SERVER_AND_FRIENDS | STORE_AND_ENGINE | DEFINITIONS | {"rich", "cel"}
    assert _loaded(modules, unwanted) == set()


def test_import_kaon_imports_no_public_name_until_used() -> None:
    code = (
        "import sys, kaon; before = set(sys.modules); kaon.step; "
        "print(sorted(m for m in before if m.startswith('kaon')), 'kaon.dsl.python' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['kaon',", "'kaon._version']", "True"]


def test_every_public_name_of_kaon_resolves() -> None:
    import kaon

    assert set(kaon.__all__) <= set(dir(kaon))
    assert all(getattr(kaon, name) is not None for name in kaon.__all__)
    from kaon.steptypes.context import current_context

    assert kaon.context is current_context
    with pytest.raises(AttributeError):
        kaon.no_such_name  # noqa: B018


def test_validate_imports_no_store_engine_or_server(tmp_path: Path, flow: Path) -> None:
    modules = _imported(tmp_path, "validate", str(flow))
    assert _loaded(modules, SERVER_AND_FRIENDS | STORE_AND_ENGINE | UNUSED_HERE) == set()


# A local store runs its statements compiled ahead of time on sqlite3 (kaon.store._lite).
SQLALCHEMY = {"sqlalchemy", "kaon.store._queries", "kaon.store._engines", "kaon.store.schema"}


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_run_imports_the_store_but_no_sqlalchemy_server_client_or_migrations(
    tmp_path: Path, flow: Path, executor: str
) -> None:
    home = tmp_path / "home"
    found = _probe(tmp_path, "run", str(flow), "--home", str(home), "-e", executor)
    modules = set(found["modules"])
    unwanted = SERVER_AND_FRIENDS | POSTGRESQL | UNUSED_HERE | HEAVY | SQLALCHEMY | EXPERIMENTS
    assert _loaded(modules, unwanted) == set()
    assert {"kaon.store.sql", "kaon.store._lite", "kaon.engine.engine"} <= modules
    # the summary shows views built from trusted records: no pydantic validator is built
    assert "kaon.service.views" in modules
    assert found["views_built"] == []
    # a second run, on a store now at the current schema, does not consult Alembic either
    modules = _imported(tmp_path, "run", str(flow), "--home", str(home), "-e", executor)
    assert _loaded(modules, unwanted) == set()
    # nor does showing the run
    with sqlite3.connect(home / "kaon.db") as db:
        (run_id,) = db.execute("SELECT id FROM runs LIMIT 1").fetchone()
    modules = _imported(tmp_path, "show", run_id, "--home", str(home))
    assert _loaded(modules, unwanted) == set()
