"""A cached shell step of a pushed workflow counts the code its script reads, transitively.

Two versions of a workflow that differ only in a file the step's script reads as code (the
``helper.py`` a ``python3 tool.py`` imports, the ``lib.sh`` a ``bash run.sh`` sources) used
to share the step's cache key: the second version's run was a hit on the first's result and
returned what the first version's code computed.
"""

from __future__ import annotations

from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = """name: scripted_cache
defaults: {cache: true}
steps:
  - id: tool
    shell: python3 tool.py
  - id: sourced
    shell: bash run.sh
"""
TOOL = 'import helper\nprint(f"::kaon::output v={helper.VERSION}")\n'
RUN = 'source lib.sh\necho "::kaon::output v=$LIBV"\n'


def _push(services: Services, version: str) -> int:
    files = {
        "tool.py": TOOL,
        "helper.py": f"VERSION = {version!r}\n",
        "run.sh": RUN,
        "lib.sh": f"LIBV={version}\n",
    }
    return services.registry.push(FLOW, "flow.yaml", LOCAL_PRINCIPAL, files=files).version


def test_a_version_whose_scripts_helper_changed_is_a_miss(services: Services) -> None:
    assert _push(services, "one") == 1
    assert _push(services, "two") == 2
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    seen = []
    try:
        for version in (1, 2, 1):
            run = services.registry.start_run(
                "scripted_cache", {}, LOCAL_PRINCIPAL, version=version
            )
            engine.add_run(run.id)
            assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
            steps = {s.path: s for s in services.runs.run_detail(run.id).steps}
            seen.append(
                (
                    steps["tool"].outputs["v"].value,
                    steps["sourced"].outputs["v"].value,
                    steps["tool"].status,
                )
            )
    finally:
        engine.close()
    assert seen == [
        ("one", "one", "succeeded"),
        ("two", "two", "succeeded"),  # was a hit on version 1: ("one", "one", "cached")
        ("one", "one", "cached"),
    ]
