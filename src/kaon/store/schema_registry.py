"""Tables of the workflow registry, API tokens and the audit trail (the server's).

Defined on the same :data:`kaon.store.schema.metadata` as the core tables; created by
Alembic revision 0004.
"""

from __future__ import annotations
