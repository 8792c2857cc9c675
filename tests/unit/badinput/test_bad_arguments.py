"""Bad parameters, settings, stores, artifacts and command arguments: each refused with exit 2,
a message naming what is wrong (the parameter, variable, path or argument), and the store
untouched. ``{good}``, ``{run}``, ``{root}`` and ``{home}`` in a case stand for the sandbox's
workflow file, its run id, its folder and Kaon's home.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import pytest
from badinput_support import Sandbox, expect_refused


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    located: tuple[str, ...]
    env: dict[str, str | None] = field(default_factory=dict)
    code: int = 2


def run(*params: str) -> tuple[str, ...]:
    return ("run", "{good}", *(p for param in params for p in ("-p", param)))


PARAMETERS: dict[str, Case] = {
    "int-text": Case(run("n=abc"), ("params.n", "'abc'")),
    "int-markup": Case(run("n=[bold]x"), ("params.n", "'[bold]x'")),
    "int-float": Case(run("n=1.5"), ("params.n", "'1.5'")),
    "int-empty": Case(run("n="), ("params.n", "expected an int")),
    "int-unicode-digit": Case(run("n=²"), ("params.n", "'²'")),
    "int-over-64-bits": Case(run("n=99999999999999999999999999"), ("params.n", "64 bits")),
    "float-text": Case(run("f=abc"), ("params.f", "expected a float")),
    "float-nan": Case(run("f=nan"), ("params.f", "finite")),
    "float-inf": Case(run("f=inf"), ("params.f", "finite")),
    "float-neg-inf": Case(run("f=-Infinity"), ("params.f", "finite")),
    "float-huge": Case(run("f=1e999"), ("params.f", "finite")),
    "bool-text": Case(run("b=maybe"), ("params.b", "expected a bool")),
    "bool-empty": Case(run("b="), ("params.b", "expected a bool")),
    "list-text": Case(run("l=abc"), ("params.l", "expected a JSON list")),
    "list-dict": Case(run('l={"a": 1}'), ("params.l", "expected a JSON list")),
    "list-nan": Case(run("l=[1, NaN]"), ("params.l", "NaN")),
    "list-infinity": Case(run("l=[Infinity]"), ("params.l", "Infinity")),
    "list-neg-infinity": Case(run("l=[-Infinity]"), ("params.l", "Infinity")),
    "list-unclosed": Case(run("l=[1, 2"), ("params.l", "expected a JSON list")),
    "list-too-deep": Case(run("l=" + "[" * 1000 + "]" * 1000), ("params.l", "nested deeper")),
    "list-deeper-than-stored-values": Case(run("l=" + "[" * 33 + "]" * 33), ("params.l",)),
    "list-too-large": Case(run("l=[" + ",".join(["1"] * 600_000) + "]"), ("params.l", "limit")),
    "dict-list": Case(run("d=[1]"), ("params.d", "expected a JSON dict")),
    "dict-nan": Case(run('d={"a": NaN}'), ("params.d", "NaN")),
    "dict-nested-inf": Case(run('d={"a": {"b": [Infinity]}}'), ("params.d", "Infinity")),
    "str-too-large": Case(run("s=" + "x" * 1_000_001), ("params.s", "limit of 1,000,000")),
    "unknown": Case(run("zz=1"), ("params.zz", "unknown parameter 'zz'")),
    "unknown-close": Case(run("nn=1"), ("params.nn", "did you mean 'n'")),
    "unknown-newline": Case(run("n\nx=1"), ("unknown parameter", "'n\\nx'")),
    "twice": Case(run("n=1", "n=2"), ("params.n", "given twice")),
    "no-equals": Case(run("n"), ("expected key=value", "'n'")),
    "empty-name": Case(run("=1"), ("missing parameter name",)),
    "several-at-once": Case(run("n=x", "f=y", "zz=1"), ("params.n", "params.f", "params.zz")),
}

SETTINGS: dict[str, Case] = {
    "workers-text": Case(("runs",), ("KAON_WORKERS", "'abc'"), {"KAON_WORKERS": "abc"}),
    "workers-zero": Case(("runs",), ("KAON_WORKERS", "between 1 and"), {"KAON_WORKERS": "0"}),
    "workers-negative": Case(("runs",), ("KAON_WORKERS",), {"KAON_WORKERS": "-3"}),
    "workers-huge": Case(("runs",), ("KAON_WORKERS",), {"KAON_WORKERS": "99999999"}),
    "workers-float": Case(("runs",), ("KAON_WORKERS", "'1.5'"), {"KAON_WORKERS": "1.5"}),
    "workers-on-run": Case(("run", "{good}"), ("KAON_WORKERS",), {"KAON_WORKERS": "abc"}),
    "workers-on-server": Case(("server", "--port", "0"), ("KAON_WORKERS",), {"KAON_WORKERS": "x"}),
    "executor-on-server": Case(("server", "-e", "nope"), ("--executor", "'nope'")),
    "workers-option-zero": Case(("run", "{good}", "--workers", "0"), ("--workers",)),
    "executor-env": Case(("runs",), ("KAON_EXECUTOR", "'bogus'"), {"KAON_EXECUTOR": "bogus"}),
    "executor-option": Case(("run", "{good}", "--executor", "bogus"), ("--executor", "'bogus'")),
    "executor-markup": Case(("run", "{good}", "-e", "[/x]"), ("--executor", "'[/x]'")),
    "db-env-malformed": Case(("runs",), ("::nope",), {"KAON_DB": "::nope"}),
    "db-env-unsupported": Case(("runs",), ("mysql",), {"KAON_DB": "mysql://u@h/db"}),
    "db-option-unsupported": Case(("runs", "--db", "oracle://x"), ("unsupported store URL",)),
    "db-bad-sqlite-driver": Case(("runs", "--db", "sqlite+nope:///x.db"), ("sqlite+nope",)),
    "url-unreachable": Case(("runs", "--url", "http://127.0.0.1:9"), ("Kaon server",)),
    "url-malformed": Case(("runs",), ("KAON_URL", "'http://[::1'"), {"KAON_URL": "http://[::1"}),
    "url-no-scheme": Case(("runs", "--url", "notaurl"), ("notaurl",)),
    "db-env-named": Case(("runs",), ("KAON_DB: malformed store URL",), {"KAON_DB": "::x"}),
    "home-env-named": Case(
        ("run", "{good}"),
        ("KAON_HOME: cannot create the state folder",),
        {"KAON_HOME": "/proc/kaon-home"},
    ),
    "artifacts-unknown-protocol": Case(
        ("run", "{good}", "--artifacts", "nope://x"), ("cannot open artifact store 'nope://x'",)
    ),
    "artifacts-env-unknown-protocol": Case(
        ("run", "{good}"), ("'nope://y'",), {"KAON_ARTIFACTS": "nope://y"}
    ),
}

STORES: dict[str, Case] = {
    "runs-missing-file": Case(
        ("runs", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at", "nope/kaon.db")
    ),
    "show-missing-file": Case(
        ("show", "x", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "logs-missing-file": Case(
        ("logs", "x", "a", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "kill-missing-file": Case(
        ("kill", "x", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "artifacts-missing-file": Case(
        ("artifacts", "x", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "cache-missing-file": Case(
        ("cache", "list", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "versions-missing-file": Case(
        ("versions", "good", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "triggers-missing-file": Case(
        ("triggers", "--db", "sqlite:///{root}/nope/kaon.db"), ("no Kaon store at",)
    ),
    "runs-missing-home": Case(("runs", "--home", "{root}/typo"), ("no Kaon store at", "typo")),
    "runs-empty-file": Case(
        ("runs", "--db", "sqlite:///{root}/empty.db"), ("no Kaon store at", "empty.db")
    ),
    "runs-foreign-db": Case(
        ("runs", "--db", "sqlite:///{root}/other_app.db"), ("not a Kaon store", "customers")
    ),
    "run-foreign-db": Case(
        ("run", "{good}", "--db", "sqlite:///{root}/other_app.db"),
        ("not a Kaon store", "customers"),
    ),
    "runs-not-sqlite": Case(
        ("runs", "--db", "sqlite:///{root}/notes.txt"), ("notes.txt", "not a Kaon store")
    ),
    "run-not-sqlite": Case(("run", "{good}", "--db", "sqlite:///{root}/notes.txt"), ("notes.txt",)),
    "runs-db-is-folder": Case(("runs", "--db", "sqlite:///{root}/defs"), ("is not a file",)),
    "run-home-under-file": Case(
        ("run", "{good}", "--home", "{root}/notes.txt/home"),
        ("cannot create the state folder", "notes.txt"),
    ),
    "run-home-in-proc": Case(
        ("run", "{good}", "--home", "/proc/kaon-home"), ("cannot create the state folder", "/proc")
    ),
    "show-home-under-file": Case(
        ("show", "x", "--home", "{root}/notes.txt/home"), ("no Kaon store at",)
    ),
}

ARTIFACTS: dict[str, Case] = {
    "get-unknown-hash": Case(("get", "abcdef12"), ("abcdef12",)),
    "get-not-hex": Case(("get", "zz-not-a-hash"), ("zz-not-a-hash",)),
    "get-markup-hash": Case(("get", "[/x]"), ("[/x]",)),
    "get-unknown-step": Case(("get", "{run}", "nope"), ("nope",)),
    "get-unknown-output": Case(("get", "{run}", "a", "--name", "zz"), ("zz",)),
    "get-output-without-step": Case(
        ("get", "{run}", "--name", "zz"), ("--name needs a RUN and a STEP",)
    ),
    "get-out-under-a-file": Case(
        ("get", "{run}", "a", "-o", "{root}/notes.txt/value.json"),
        ("cannot write", "notes.txt is a file, not a folder"),
    ),
    "get-out-in-proc": Case(
        ("get", "{run}", "a", "-o", "/proc/nope/value.json"),
        ("cannot write /proc/nope/value.json", "No such file or directory"),
    ),
    "lineage-unknown": Case(("lineage", "abcdef12"), ("abcdef12",)),
    "lineage-not-hex": Case(("lineage", "not hex"), ("not hex",)),
    "artifacts-unknown-run": Case(("artifacts", "nope"), ("'nope'",)),
    "explain-unknown-step": Case(("explain", "{run}", "nope"), ("nope",)),
    "cache-clear-nothing": Case(("cache", "clear"), ("--",)),
}

COMMANDS: dict[str, Case] = {
    "show-unknown-run": Case(("show", "nope"), ("'nope'",)),
    "show-newline-run": Case(("show", "nope\n"), ("nope",)),
    "logs-unknown-step": Case(("logs", "{run}", "nope"), ("nope",)),
    "logs-attempt-99": Case(("logs", "{run}", "a", "--attempt", "99"), ("no attempt 99", "'a'")),
    "logs-attempt-0": Case(("logs", "{run}", "a", "--attempt", "0"), ("--attempt",)),
    "skip-bad-json": Case(
        ("skip", "{run}", "a", "--output", "{bad"), ("--output is not a valid JSON value",)
    ),
    "skip-nan": Case(("skip", "{run}", "a", "--output", "NaN"), ("--output", "NaN")),
    "skip-infinity": Case(("skip", "{run}", "a", "--output", "[1e999]"), ("--output",)),
    "skip-too-deep": Case(
        ("skip", "{run}", "a", "--output", "[" * 3000 + "]" * 3000), ("--output", "nested deeper")
    ),
    "skip-unknown-step": Case(("skip", "{run}", "nope"), ("nope",)),
    "restart-unknown-step": Case(("restart", "{run}", "--from", "nope"), ("nope",)),
    "kill-finished-run": Case(("kill", "{run}"), ("already succeeded",)),
    "kill-unknown-run": Case(("kill", "nope"), ("'nope'",)),
    "runs-bad-status": Case(("runs", "--status", "[/s]"), ("--status", "'[/s]'")),
    "runs-limit-zero": Case(("runs", "--limit", "0"), ("--limit",)),
    "runs-negative-offset": Case(("runs", "--offset", "-1"), ("--offset",)),
    "compare-unknown-run": Case(("compare", "{run}", "nope"), ("'nope'",)),
    # Numbers past what the store's integers hold: refused by the option, never an overflow.
    "runs-offset-past-64-bits": Case(("runs", "--offset", "9" * 20), ("--offset",)),
    "show-offset-past-64-bits": Case(("show", "{run}", "--offset", "9" * 20), ("--offset",)),
    "show-all-offset-past-64-bits": Case(
        ("show", "{run}", "--all", "--limit", "5", "--offset", "9" * 20), ("--offset",)
    ),
    "show-page-past-64-bits": Case(
        ("show", "{run}", "--status", "failed", "--page", "9" * 20), ("--page",)
    ),
    "show-page-times-limit-too-far": Case(
        ("show", "{run}", "--all", "--limit", "1000", "--page", "10000000"),
        ("--page", "10,000,000"),
    ),
    "activate-version-past-64-bits": Case(("activate", "good", "9" * 20), ("VERSION",)),
    # Values a request model refuses: named by their option, never a pydantic traceback.
    "pool-slots-over-limit": Case(("pool", "set", "p", "--slots", "2000000"), ("--slots",)),
    "pool-cpus-infinite": Case(
        ("pool", "set", "p", "--slots", "1", "--cpus", "1e999"), ("--cpus",)
    ),
    "permit-max-over-limit": Case(("permit", "set", "t", "--max", "2000000"), ("--max",)),
    "backfill-cron-too-long": Case(
        ("backfill", "good", "--start", "2024-01-01", "--end", "2024-01-02", "--cron", "x" * 300),
        ("--cron", "200"),
    ),
    "backfill-start-too-long": Case(
        ("backfill", "good", "--start", "2" * 100, "--end", "2024-01-02", "--cron", "0 0 * * *"),
        ("--start",),
    ),
    "backfill-timezone-too-long": Case(
        (
            "backfill",
            "good",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--timezone",
            "Z" * 150,
        ),
        ("--timezone",),
    ),
    "schema-unknown": Case(("schema", "nope"), ("unknown schema 'nope'",)),
    "versions-unknown-workflow": Case(("versions", "nope"), ("nope",)),
    "activate-unknown-workflow": Case(("activate", "nope", "1"), ("nope",)),
    "workflow-show-unknown": Case(("workflow", "show", "nope"), ("nope",)),
    "backfill-unknown-workflow": Case(
        ("backfill", "nope", "--start", "2024-01-01", "--end", "2024-01-02"), ("nope",)
    ),
    "backfill-cancel-unknown": Case(("backfill-cancel", "nope"), ("nope",)),
    "workflow-set-unknown": Case(("workflow", "set", "nope", "team=x"), ("nope",)),
    "validate-missing-file": Case(
        ("validate", "{root}/missing.yaml"), ("missing.yaml", "not found")
    ),
    "run-missing-file": Case(("run", "{root}/missing.yaml"), ("missing.yaml", "not found")),
    "run-unknown-suffix": Case(
        ("run", "{root}/notes.txt"), ("notes.txt", "unknown workflow file type")
    ),
    "run-unknown-workflow-name": Case(("run", "{good}:nope"), ("no workflow 'nope'",)),
    "run-folder": Case(("run", "{root}/defs"), ("defs",)),
    "run-large-file": Case(("run", "{root}/large.yaml"), ("large.yaml", "larger than the limit")),
    "run-endless-file": Case(("run", "{root}/endless.yaml"), ("/dev/zero", "not found")),
    "run-not-utf8": Case(("run", "{root}/latin1.yaml"), ("latin1.yaml:2", "not UTF-8")),
    "run-large-python": Case(("run", "{root}/large.py"), ("large.py", "larger than the limit")),
}

ALL: dict[str, Case] = {
    **{f"param-{k}": v for k, v in PARAMETERS.items()},
    **{f"setting-{k}": v for k, v in SETTINGS.items()},
    **{f"store-{k}": v for k, v in STORES.items()},
    **{f"artifact-{k}": v for k, v in ARTIFACTS.items()},
    **{f"command-{k}": v for k, v in COMMANDS.items()},
}


@pytest.fixture(scope="module")
def prepared(sandbox: Sandbox) -> Sandbox:
    """Files some cases point at: another application's database, a text file, oversized,
    endless and non-UTF-8 definitions, an empty database file."""
    root = sandbox.root
    foreign = root / "other_app.db"
    if not foreign.exists():
        with sqlite3.connect(foreign) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute("INSERT INTO customers (name) VALUES ('ada')")
        conn.close()
    (root / "notes.txt").write_text("not a database\n" * 100)
    (root / "empty.db").write_bytes(b"")
    (root / "large.yaml").write_text("name: big\n# " + "x" * 1_100_000 + "\nsteps: []\n")
    (root / "large.py").write_text("# " + "x" * 1_100_000 + "\n")
    (root / "latin1.yaml").write_bytes(b"name: w\ndescription: caf\xe9\nsteps: []\n")
    endless = root / "endless.yaml"
    if not endless.exists():
        endless.symlink_to("/dev/zero")
    (root / "defs").mkdir(exist_ok=True)
    return sandbox


@pytest.mark.parametrize("case", list(ALL.values()), ids=list(ALL))
def test_bad_input_is_refused_and_changes_nothing(prepared: Sandbox, case: Case) -> None:
    box = prepared

    def fill(text: str) -> str:
        return (
            text.replace("{good}", str(box.good))
            .replace("{run}", box.run_id)
            .replace("{root}", str(box.root))
            .replace("{home}", str(box.home))
        )

    args = [fill(a) for a in case.args]
    located = [fill(piece) for piece in case.located]
    foreign = box.root / "other_app.db"
    foreign_before = foreign.read_bytes()
    expect_refused(box, args, located, code=case.code, env=case.env)
    assert foreign.read_bytes() == foreign_before
    assert not (box.root / "nope").exists() and not (box.root / "typo").exists()
