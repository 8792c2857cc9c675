"""A push killed while it stores its files leaves no bundle folder behind.

The folder named by the bundle's digest was made first and filled file by file: a push killed
midway left it with some files, and a later run of that version on this home (its definition
recorded by another replica) trusted the folder and failed on the missing file. The files now
go to a private folder renamed into place whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kaon.api.deps import Services
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = "import kaon\\nimport helper\\n\\n@kaon.workflow\\ndef pushed():\\n    kaon.shell('true')\\n"

_KILLED_PUSH = textwrap.dedent(
    f"""
    import os, pathlib, sys
    from kaon.api.app import build_services
    from kaon.service.auth import LOCAL_PRINCIPAL
    from kaon.service.settings import Settings

    services = build_services(Settings.from_env(home=sys.argv[1], executor="inline"))

    def killed(self, data):  # the process dies as the pushed file is written
        os._exit(9)

    pathlib.Path.write_bytes = killed
    services.registry.push("{FLOW}", "flow.py", LOCAL_PRINCIPAL, files={{"helper.py": "X = 1\\n"}})
    """
)


def test_a_push_killed_midway_leaves_no_bundle_folder(services: Services) -> None:
    home = services.settings.home
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    died = subprocess.run([sys.executable, "-c", _KILLED_PUSH, str(home)], env=env, timeout=60)
    assert died.returncode == 9
    sources = services.registry.sources_dir
    assert [p.name for p in sources.iterdir() if not p.name.startswith(".")] == []
    pushed = services.registry.push(
        FLOW.replace("\\n", "\n"), "flow.py", LOCAL_PRINCIPAL, files={"helper.py": "X = 1\n"}
    )
    assert pushed.version == 1
    [folder] = [p for p in sources.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in Path(folder).iterdir()) == ["flow.py", "helper.py"]
