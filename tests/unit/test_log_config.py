"""Logging is configured in one place: a level, text or JSON lines, Alembic kept quiet."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from kaon.errors import ConfigurationError
from kaon.log_config import choose_level, configure_logging


@pytest.fixture(autouse=True)
def restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("KAON_LOG_LEVEL", raising=False)
    monkeypatch.delenv("KAON_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    alembic = logging.getLogger("alembic").level
    yield
    choose_level(None)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic)


def test_json_lines_at_the_chosen_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAON_LOG_FORMAT", "json")
    choose_level("info")
    assert configure_logging() == "info"
    configure_logging()  # configuring again replaces Kaon's handler: one line per record
    logging.getLogger("kaon.engine").info("claimed %s", "r-1")
    logging.getLogger("kaon.engine").debug("not shown")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("kaon.api").exception("failed")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("info", "kaon.engine", "claimed r-1"),
        ("error", "kaon.api", "failed"),
    ]
    assert "ValueError: boom" in records[1]["exc_info"] and records[0]["time"].endswith("Z")


def test_alembic_is_quiet_unless_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(default="info")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade -> 0001")
    assert capsys.readouterr().err == ""
    choose_level("debug")
    configure_logging()
    logging.getLogger("alembic.runtime.migration").info("Running upgrade -> 0001")
    assert "Running upgrade" in capsys.readouterr().err


def test_the_default_depends_on_the_command_and_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert configure_logging() == "warning"
    assert configure_logging(default="info") == "info"
    monkeypatch.setenv("KAON_LOG_LEVEL", "ERROR")
    assert configure_logging(default="info") == "error"
    monkeypatch.setenv("KAON_LOG_LEVEL", "loud")
    with pytest.raises(ConfigurationError, match="KAON_LOG_LEVEL: unknown log level 'loud'"):
        configure_logging()
    monkeypatch.delenv("KAON_LOG_LEVEL")
    monkeypatch.setenv("KAON_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="KAON_LOG_FORMAT"):
        configure_logging()
