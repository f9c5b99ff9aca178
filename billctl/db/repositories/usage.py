"""Usage buckets: the queries the usage, invoice and recompute services share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billctl.db.models import UsageBucket

if TYPE_CHECKING:  # the dialect modules are imported when a statement needs them
    from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def usage_totals(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """Units per endpoint for one tenant in [start, end)."""
    rows = conn.execute(
        sa.select(UsageBucket.endpoint, sa.func.sum(UsageBucket.units))
        .where(
            UsageBucket.tenant_id == tenant_id,
            UsageBucket.bucket_start >= int(start.timestamp()),
            UsageBucket.bucket_start < int(end.timestamp()),
        )
        .group_by(UsageBucket.endpoint)
    )
    return {endpoint: int(units) for endpoint, units in rows}
