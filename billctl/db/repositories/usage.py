"""Usage buckets: the queries the usage, invoice and recompute services share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import col

from billctl.db.models import Tenant, UsageBucket

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
        sa.select(col(UsageBucket.endpoint), sa.func.sum(UsageBucket.units))
        .where(*_period(tenant_id, start, end))
        .group_by(col(UsageBucket.endpoint))
    )
    return {endpoint: int(units) for endpoint, units in rows}


def _period(tenant_id: int, start: datetime, end: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        col(UsageBucket.tenant_id) == tenant_id,
        col(UsageBucket.bucket_start) >= int(start.timestamp()),
        col(UsageBucket.bucket_start) < int(end.timestamp()),
    )


def endpoint_totals(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> list[tuple[str, int, int]]:
    """(endpoint, events, units) for one tenant in [start, end)."""
    rows = conn.execute(
        sa.select(col(UsageBucket.endpoint), sa.func.sum(UsageBucket.events), sa.func.sum(UsageBucket.units))
        .where(*_period(tenant_id, start, end))
        .group_by(col(UsageBucket.endpoint))
    )
    return [(endpoint, int(events), int(units)) for endpoint, events, units in rows]


def bucket_totals(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(bucket start, units) for one tenant in [start, end)."""
    rows = conn.execute(
        sa.select(col(UsageBucket.bucket_start), sa.func.sum(UsageBucket.units))
        .where(*_period(tenant_id, start, end))
        .group_by(col(UsageBucket.bucket_start))
    )
    return [(int(bucket), int(units)) for bucket, units in rows]


def tenant_totals(conn: Connection, timezone: str, start: datetime, end: datetime) -> list[tuple[str, str, int, int]]:
    """(tenant key, name, events, units) in [start, end) for the tenants billed in ``timezone``."""
    rows = conn.execute(
        sa.select(col(Tenant.key), col(Tenant.name), sa.func.sum(UsageBucket.events), sa.func.sum(UsageBucket.units))
        .join(Tenant, col(Tenant.id) == col(UsageBucket.tenant_id))
        .where(
            col(Tenant.timezone) == timezone,
            col(UsageBucket.bucket_start) >= int(start.timestamp()),
            col(UsageBucket.bucket_start) < int(end.timestamp()),
        )
        .group_by(col(Tenant.key), col(Tenant.name))
    )
    return [(key, name, int(events), int(units)) for key, name, events, units in rows]
