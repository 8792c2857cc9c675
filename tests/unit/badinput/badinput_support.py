"""The bad-input suite: a store with one finished run, and a CLI that must leave it alone.

Every case runs the ``kaon`` command in-process (Typer's CliRunner) against that store and
checks three things: the exit code, a message that says where the problem is (file and line,
field, parameter, variable or path), and that the store is exactly as before (the SQLite
file's checksum and every table's row count, and no new file in Kaon's home).
"""

from __future__ import annotations

import hashlib
import sqlite3
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from kaon.cli.main import app

GOOD = textwrap.dedent(
    """\
    name: good
    params:
      n: {type: int, default: 1}
      f: {type: float, default: 0.5}
      b: {type: bool, default: false}
      s: {type: str, default: "x"}
      l: {type: list, default: []}
      d: {type: dict, default: {}}
    steps:
      - id: a
        shell: echo hi
      - id: b
        shell: echo there
        needs: [a]
    """
)


@dataclass(frozen=True)
class Result:
    """What one command did."""

    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Sandbox:
    """A Kaon home with a store holding one succeeded run of ``good``."""

    root: Path
    home: Path
    good: Path
    run_id: str
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def db(self) -> Path:
        return self.home / "kaon.db"

    def kaon(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        base: dict[str, str | None] = {
            "KAON_HOME": str(self.home),
            "KAON_EXECUTOR": "inline",
            "KAON_URL": None,
            "KAON_DB": None,
            "KAON_WORKERS": None,
            "KAON_ARTIFACTS": None,
        }
        base.update(env or {})
        result = self.runner.invoke(app, list(args), env=base, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    def snapshot(self) -> tuple[str, dict[str, int], frozenset[str]]:
        """The store's checksum, every table's row count, and the files under the root."""
        wal = self.db.with_name(self.db.name + "-wal")
        digest = hashlib.sha256(
            self.db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        ).hexdigest()
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = [row[0] for row in rows]
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        finally:
            conn.close()
        files = frozenset(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if not p.name.endswith(("-wal", "-shm"))
        )
        return digest, counts, files

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.root / "defs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path


def expect_refused(
    box: Sandbox,
    args: list[str],
    located: list[str],
    *,
    code: int = 2,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """Run ``kaon ARGS``; assert the exit code, every ``located`` piece in the output, no
    traceback, and an unchanged store."""
    before = box.snapshot()
    result = box.kaon(*args, env=env)
    after = box.snapshot()
    assert result.code == code, (args, result.text)
    for piece in located:
        assert piece in result.text, (piece, result.text)
    assert "Traceback" not in result.text
    assert after == before, "the store changed"
    return result
