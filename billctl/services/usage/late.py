"""Late events: usage counted for a period whose invoice is already finalized (DESIGN.md invariant
5). They are reported and recorded in ``late_usage``, so the tenant's next invoice bills them as an
adjustment."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import col

from billctl.core import periods
from billctl.core.lifecycle import InvoiceStatus
from billctl.db.models import Invoice, LateUsage
from billctl.db.repositories.tenants import lock_tenants
from billctl.db.repositories.usage import dialect_insert
from billctl.db.tables import table_of
from billctl.services.usage.events import UsageReport


def note_late(
    conn: Connection,
    buckets: dict[tuple[int, int], list[int]],
    tz_of: dict[int, str],
    key_of: dict[int, str],
    report: UsageReport,
) -> None:
    """Find events that landed in a period with a live (finalized) invoice: report them and mark
    the (tenant, period) so the tenant's next invoice bills the difference."""
    per_period: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for (tid, start), (units, count) in buckets.items():
        acc = per_period[(tid, _period_key(start, tz_of[tid]))]
        acc[0] += units
        acc[1] += count
    lock_tenants(conn, (tid for tid, _ in per_period))
    finalized = set(
        conn.execute(
            sa.select(col(Invoice.tenant_id), col(Invoice.period)).where(
                col(Invoice.tenant_id).in_({tid for tid, _ in per_period}),
                col(Invoice.status) != InvoiceStatus.VOID,
                col(Invoice.period).in_({p for _, p in per_period}),
            )
        ).all()
    )
    late_rows = []
    for (tid, period), (units, count) in per_period.items():
        if (tid, period) in finalized:
            report.late[f"{key_of[tid]} {period}"] += count
            late_rows.append(
                {"tenant_id": tid, "period": period, "events": count, "units": units, "last_seen": datetime.now(UTC)}
            )
    if late_rows:
        table = table_of(LateUsage)
        statement = dialect_insert(conn, table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.period],
            set_={
                "events": table.c.events + statement.excluded.events,
                "units": table.c.units + statement.excluded.units,
                "last_seen": statement.excluded.last_seen,
            },
        )
        conn.execute(statement, late_rows)


@functools.lru_cache(maxsize=65536)
def _period_key(bucket: int, tz: str) -> str:
    return str(periods.period_of(_utc(bucket), tz))


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
