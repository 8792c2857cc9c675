"""Fixtures of the Ray tests, which run inside the network namespace made by
``tests/integration/test_ray.py`` (only loopback there; a Ray head already listens on
``KAON_RAY_ADDRESS``, with token authentication, its token in ``KAON_RAY_TOKEN``).

The modules here are named ``check_*.py`` so that a plain ``pytest`` never collects them
outside the namespace; ``test_ray.py`` runs them with ``-o python_files=check_*.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
sys.path.insert(0, str(CONTRACT))


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The address of the namespace's Ray head."""
    address = os.environ.get("KAON_RAY_ADDRESS")
    if not address or os.environ.get("KAON_RAY_NETNS") != "1":
        pytest.fail("run these through tests/integration/test_ray.py (a private namespace)")
    return address
