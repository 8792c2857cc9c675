"""The replica tests' PostgreSQL: the contract suites' throwaway cluster and databases
(``tests/contract/conftest.py``), loaded once for this folder so that its test files share
one session cluster instead of each starting its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "kaon_pg_fixtures", Path(__file__).parents[2] / "contract" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)
pg_cluster = _fixtures.pg_cluster
pg_url = _fixtures.pg_url
