"""Errors name a pushed workflow's modules by their files, never ``kaon_user_<hash>``.

A step of version 2 reading ``helper.MISSING`` from a ``helper.py`` that lacks it failed with
``module 'kaon_user_9d7086e5f08e' has no attribute 'MISSING'`` (its traceback said
``helper``), and a push whose ``kaon.py`` beside the workflow shadows the package was refused
with ``module 'kaon_user_19ce3f38ef9c' has no attribute 'step'``: which file was meant could
not be told from what the user read.
"""

from __future__ import annotations

import pytest

from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.errors import DefinitionError
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = """
import kaon
import helper


@kaon.step
def read() -> object:
    return helper.MISSING


@kaon.workflow
def named_errors() -> None:
    read()
"""


def test_a_steps_error_names_the_helper_by_its_file(services: Services) -> None:
    files = {"helper.py": "PRESENT = 1\n"}
    assert services.registry.push(FLOW, "flow.py", LOCAL_PRINCIPAL, files=files).version == 1
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    try:
        run = services.registry.start_run("named_errors", {}, LOCAL_PRINCIPAL)
        engine.add_run(run.id)
        assert engine.run_until_done(run.id) is RunStatus.FAILED
    finally:
        engine.close()
    error = {s.path: s for s in services.runs.run_detail(run.id).steps}["read"].error
    assert error is not None
    assert error.message == "module 'helper' has no attribute 'MISSING'"


def test_a_refused_push_names_the_shadowing_module_by_its_file(services: Services) -> None:
    files = {"kaon.py": "VERSION = 1\n", "helper.py": "MISSING = 1\n"}
    with pytest.raises(DefinitionError) as raised:
        services.registry.push(FLOW, "flow.py", LOCAL_PRINCIPAL, files=files)
    assert "kaon_user_" not in str(raised.value)
    assert "module 'kaon' has no attribute 'step'" in str(raised.value)
