"""Errors raised by user code are named by their real module (the file), not the synthetic
module a user file is loaded under; their base classes are recorded for ``retry_on``."""

from __future__ import annotations

import pathlib

from kaon.dsl._common import error_type_name as dsl_error_type_name
from kaon.errors import Location
from kaon.executors.runtime import error_info
from kaon.steptypes.codeload import load_file_module


def test_a_user_error_is_named_by_its_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pipeline.py").write_text(
        "class Flaky(ConnectionError):\n    pass\n\n\ndef boom():\n    raise Flaky('down')\n"
    )
    module = load_file_module(str(tmp_path / "pipeline.py"))
    assert module.__name__.startswith("kaon_user_")
    try:
        module.boom()
    except Exception as exc:
        info = error_info(exc)
    assert info.error_type == "pipeline.Flaky"
    assert info.bases[:2] == ("ConnectionError", "OSError")
    assert info.summary() == "pipeline.Flaky: down"
    # The traceback's last line named the synthetic module (kaon_user_<hash>.Flaky).
    assert "kaon_user_" not in info.traceback
    assert info.traceback.rstrip().endswith("pipeline.Flaky: down")
    assert dsl_error_type_name(module.Flaky, Location()) == "pipeline.Flaky"
