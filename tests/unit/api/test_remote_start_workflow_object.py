"""``kaon.start(workflow, url=...)`` with a workflow loaded from a file runs that file's code.

Given a workflow object (or its spec) loaded from ``flow.py``, the server started its
*active* version by name, whatever the local file and its ``helper.py`` held: with
``helper.py`` edited locally, the run executed the old helper, silently. It now runs the
version holding the file's content (pushed first when new, without activating it), as
``kaon run FILE`` and ``kaon.start("flow.py", url=...)`` do; an operator is refused a push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.client import _start_remote
from kaon.dsl.loader import load_workflow
from kaon.errors import PermissionDeniedError
from kaon.service.remote import RemoteService

FLOW = """
import kaon
import helper


@kaon.step
def answer() -> object:
    return helper.VERSION


@kaon.workflow
def objectflow() -> None:
    answer()
"""


def _remote(client: Any, token: str) -> RemoteService:
    return RemoteService("http://testserver", token=token, transport=client._transport)


def test_a_workflow_object_runs_its_files_version(
    client: Any, tokens: dict[str, str], services: Services, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(FLOW)
    (tmp_path / "helper.py").write_text('VERSION = "one"\n')
    owner = _remote(client, tokens["owner"])
    assert owner.push(str(flow), owner_group="ml").version == 1
    (tmp_path / "helper.py").write_text('VERSION = "two"\n')  # edited, not pushed
    spec = load_workflow(str(flow))
    operator = _remote(client, tokens["operator"])
    with pytest.raises(PermissionDeniedError):  # a new version needs an owner
        _start_remote(operator, spec, False, (), (), {})
    handle = _start_remote(owner, spec, False, (), (), {})
    versions = services.registry.versions("objectflow")
    assert [v.version for v in versions] == [1, 2]
    assert handle.detail().definition_hash == versions[1].definition_hash  # was version 1's
    assert services.registry.workflow("objectflow").active_version == 1  # not activated
    (tmp_path / "helper.py").write_text('VERSION = "one"\n')
    handle = _start_remote(operator, load_workflow(str(flow)), False, (), (), {})
    assert handle.detail().definition_hash == versions[0].definition_hash  # no push needed
