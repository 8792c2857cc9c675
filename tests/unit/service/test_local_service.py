"""The local service layer: `kaon.run` from Python, kills, settings errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import kaon
from kaon.errors import ConfigurationError, InvalidActionError, ParameterError
from kaon.service import LocalService, Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
import cli_flows


def test_kaon_run_from_python_records_in_the_store(tmp_path: Path) -> None:
    detail = kaon.run(cli_flows.squares, n=3, home=str(tmp_path))
    assert detail.status == "succeeded" and detail.tasks == {"succeeded": 5}
    again = kaon.run(f"{cli_flows.__file__}:squares", n=3, home=str(tmp_path))
    assert again.id != detail.id
    with LocalService(Settings.from_env(home=str(tmp_path))) as service:
        assert {r.id for r in service.list_runs()} == {detail.id, again.id}


def test_kaon_run_rejects_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"params\.n"):
        kaon.run(cli_flows.squares, n="many", home=str(tmp_path))


def test_unknown_executor_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown executor 'warp'"):
        LocalService(Settings.from_env(home=str(tmp_path), executor="warp"))


def test_kill_pending_run_and_refuse_step_cancel_without_engine(tmp_path: Path) -> None:
    with LocalService(Settings.from_env(home=str(tmp_path), executor="inline")) as service:
        created = service.create_run(cli_flows.squares.spec, {})
        with pytest.raises(InvalidActionError, match="not being driven"):
            service.kill(created.id, step="numbers")
        assert service.kill(created.id).status == "cancelled"
        with pytest.raises(InvalidActionError, match="already cancelled"):
            service.kill(created.id)
