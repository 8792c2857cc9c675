"""A push refuses a shell step that reaches past the files the push carries.

A push carries the files beside the workflow file, not its subfolders. A YAML step with
``cwd: scripts``, or ``bash scripts/prep.sh``, ran locally and was pushed without a word, then
failed on the server (``the working folder /srv/kaon/sources/<hash>/scripts does not exist``,
or bash's ``No such file or directory``); ``cwd: ..`` ran the step in the server's own
``sources`` folder, among every other workflow's bundles. The push now says so, at the step's
line and field.
"""

from __future__ import annotations

import pytest

from kaon.api.deps import Services
from kaon.errors import DefinitionError
from kaon.service.auth import LOCAL_PRINCIPAL


def _flow(step: str) -> str:
    return f"name: reach\nsteps:\n  - id: ok\n    shell: echo hi\n  - id: prep\n{step}"


def _push(services: Services, step: str) -> int:
    files = {"prep.sh": "echo hi\n"}
    return services.registry.push(_flow(step), "flow.yaml", LOCAL_PRINCIPAL, files=files).version


@pytest.mark.parametrize(
    ("step", "field", "said"),
    [
        ("    shell: {command: bash prep.sh, cwd: scripts}\n", "cwd", "'scripts'"),
        ("    shell: {command: pwd, cwd: ..}\n", "cwd", "'..'"),
        ("    shell: bash scripts/prep.sh\n", "command", "'scripts/prep.sh'"),
        ("    shell: python ../tools/clean.py --fast\n", "command", "'../tools/clean.py'"),
        ("    shell: ./bin/run\n", "command", "'./bin/run'"),
    ],
)
def test_a_step_reaching_past_the_pushed_files_is_refused_at_its_line(
    services: Services, step: str, field: str, said: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        _push(services, step)
    [problem] = caught.value.problems
    assert problem.location.file == "flow.yaml"
    assert problem.location.line == 5
    assert problem.location.field == f"steps[1].config.{field}"
    assert said in problem.message
    assert "not its subfolders" in problem.message


@pytest.mark.parametrize(
    "step",
    [
        "    shell: bash prep.sh\n",
        "    shell: ./prep.sh && cat /etc/hostname > out/x.txt\n",
        "    shell: {command: pwd, cwd: /tmp}\n",  # absolute: used as it is, on the server too
        "    shell: {command: bash prep.sh, cwd: .}\n",
        "    shell: python -c 'print(1)' --out results/model.pkl\n",  # data, not code
    ],
)
def test_a_step_within_the_pushed_files_is_pushed(services: Services, step: str) -> None:
    assert _push(services, step) == 1
