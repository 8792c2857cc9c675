"""User text is printed as text: markup-like values never reach rich's markup parser.

Every human view of the CLI is rendered with values that look like rich markup (``[/x]``,
``[bold]``, ``[link=...]``) or emoji codes; each must exit as it would with plain values and
print the values literally.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

FLOWS = str(Path(__file__).with_name("markup_flows.py"))
MARK = "[/x][bold]b[link=http://e]l:x:"


def test_every_run_view_prints_markup_like_values_literally(kaon) -> None:  # type: ignore[no-untyped-def]
    tags = json.dumps([MARK, "[red]"])
    code, out, err = kaon("run", f"{FLOWS}:marked", "-p", f"text={MARK}", "-p", f"tags={tags}")
    assert code == 1, err
    assert MARK in out and f"boom {MARK}" in out
    run_id = out.splitlines()[0].strip()
    code, second, _ = kaon("run", f"{FLOWS}:marked", "-p", "text=[/y]")
    other = second.splitlines()[0].strip()
    views = {
        "show": (("show", run_id), MARK),
        "runs": (("runs",), run_id),
        "logs": (("logs", run_id, "echo"), MARK),
        "logs-error": (("logs", run_id, "explode"), MARK),
        "artifacts": (("artifacts", run_id), MARK),
        "explain": (("explain", other, "echo"), "echo"),
        "compare": (("compare", run_id, other), "[/y]"),
        "get": (("get", run_id, "echo"), MARK),
    }
    for name, (args, shown) in views.items():
        code, out, err = kaon(*args)
        assert code == 0, (name, err)
        assert shown in out, (name, out)
    code, out, _ = kaon("show", run_id)
    assert f"log {MARK}" not in out and "[red]" in out
    code, out, _ = kaon("logs", run_id, "echo")
    assert f"log {MARK}" in out
    code, out, _ = kaon("logs", run_id, "explode")
    assert f"RuntimeError: boom {MARK}" in out


def test_errors_quote_the_real_value(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = kaon("run", f"{FLOWS}:marked", "-p", "n=[bold]x")
    assert code == 2 and "[bold]x" in err
    assert kaon("run", f"{FLOWS}:marked")[0] == 1
    code, _, err = kaon("show", "[/nope]")
    assert code == 2 and "[/nope]" in err
    code, _, err = kaon("logs", "[/x]", "[/step]")
    assert code == 2 and "[/x]" in err
    code, _, err = kaon("runs", "--status", "[/s]")
    assert code == 2 and "[/s]" in err


def test_validate_errors_and_registry_views(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: w\nsteps:\n  - id: a\n    shell: echo\n    '[/k]': 1\n")
    code, _, err = kaon("validate", str(bad))
    assert code == 2 and "[/k]" in err
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            """
            name: marked
            description: "[/d] [bold]"
            params:
              day: {type: str, default: "[/p]"}
            steps:
              - id: a
                shell: echo hi
            triggers:
              - cron: "0 6 * * *"
                params: {day: "[/slot]"}
            """
        )
    )
    assert kaon("push", str(flow))[0] == 0
    for args in (
        ("versions", "marked"),
        ("workflow", "show", "marked"),
        ("triggers",),
        ("workflow", "set", "marked", "team=[/t]"),
        ("signal", "sig", "k=[/v]"),
    ):
        code, out, err = kaon(*args)
        assert code == 0, (args, err)
    code, out, _ = kaon("signal", "sig", "k=[/v]")
    assert "[/v]" in out
    code, _, err = kaon("signal", "[/sig]", "k=1")  # no such signal name: refused, as written
    assert code == 2 and "'[/sig]'" in err
    code, out, _ = kaon("workflow", "show", "marked")
    assert "[/t]" in out
    code, out, err = kaon(
        "backfill", "marked", "--start", "2024-01-01", "--end", "2024-01-02", "-p", "day=[/b]"
    )
    assert code == 0, err
    code, out, _ = kaon("backfills")
    assert code == 0 and "marked" in out


def test_postgres_install_hint_keeps_its_extra(kaon, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    real = sa.create_engine

    def without_psycopg(url: object, *args: object, **kwargs: object) -> object:
        if str(url).startswith("postgresql"):
            raise ImportError("No module named 'psycopg'")
        return real(url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sa, "create_engine", without_psycopg)
    code, _, err = kaon("runs", "--db", "postgresql://kaon@localhost/kaon")
    assert code == 2, err
    assert "pip install 'kaon[postgres]'" in err


ESCAPES = "\x1b[2J\x1b]52;c;aGVsbG8=\x07\x1b]0;owned\x07"


def test_escape_sequences_from_a_run_never_reach_the_terminal(kaon) -> None:  # type: ignore[no-untyped-def]
    """A step's output can hold escape sequences (clear the screen, write the clipboard, set
    the window's title). Every view shows them as ``\\xNN``; ``--json`` keeps the text."""
    code, out, err = kaon("run", f"{FLOWS}:marked", "-p", f"text={ESCAPES}")
    assert code == 1, err
    run_id = out.splitlines()[0].strip()
    assert "\x1b" not in out + err and "\\x1b[2J" in out
    for args in (
        ("show", run_id),
        ("runs",),
        ("logs", run_id, "echo"),
        ("logs", run_id, "explode"),
        ("get", run_id, "echo"),
    ):
        code, out, err = kaon(*args)
        assert code == 0, (args, err)
        assert "\x1b" not in out + err and "\x07" not in out + err, (args, out)
    code, out, _ = kaon("logs", run_id, "echo")
    assert "\\x1b]52;c;aGVsbG8=\\x07" in out
    code, out, _ = kaon("logs", run_id, "echo", "--json")
    assert any(line["text"] == f"log {ESCAPES}" for line in json.loads(out))
