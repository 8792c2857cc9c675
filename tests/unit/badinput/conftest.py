"""The bad-input suite's shared sandbox (see :mod:`badinput_support`)."""

from __future__ import annotations

import pytest
from badinput_support import GOOD, Sandbox


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("badinput")
    home = root / "home"
    good = root / "good.yaml"
    good.write_text(GOOD)
    box = Sandbox(root, home, good, "")
    result = box.kaon("run", str(good))
    assert result.code == 0, result.text
    box.run_id = result.stdout.splitlines()[0].strip()
    return box
