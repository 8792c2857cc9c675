"""Tables of triggers: trigger state, signal de-duplication, backfills, alert deliveries.

Defined on the same :data:`kaon.store.schema.metadata` as the core tables; created by
Alembic revision 0005.
"""

from __future__ import annotations
