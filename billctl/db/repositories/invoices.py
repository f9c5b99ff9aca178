"""Invoices, their lines and the counters that number them: the queries the invoice services repeat.

Every function takes the unit of work's session (or connection) and never commits. Rows come back
as model objects, or as plain core data where the caller computes on them (``BilledLine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Result
from sqlmodel import Session, SQLModel, col, select

from billctl.core.invoice import BilledLine
from billctl.core.lifecycle import InvoiceStatus
from billctl.db.models import Invoice, InvoiceLine, Plan, Tenant, UsageBucket


def _table(model: type[SQLModel]) -> sa.Table:
    """A model's Core table (for Core statements: rows, not objects, on the hot paths)."""
    return SQLModel.metadata.tables[str(model.__tablename__)]


def live_invoices(session: Session, period: str, tenant_ids: Sequence[int] | None) -> dict[int, Invoice]:
    """Tenant id -> its live (not void) invoice of ``period`` (every tenant when ``tenant_ids`` is None)."""
    query = select(Invoice).where(Invoice.period == period, Invoice.status != InvoiceStatus.VOID)
    if tenant_ids is not None:
        query = query.where(col(Invoice.tenant_id).in_(tenant_ids))
    return {row.tenant_id: row for row in session.exec(query)}


def live_for_periods(conn: Connection, tenant_id: int, periods: Sequence[str]) -> dict[str, Any]:
    """Period -> the live invoice row (Core row: id, number, currency, inputs ...) of one tenant."""
    table = _table(Invoice)
    rows = conn.execute(
        sa.select(table).where(
            table.c.tenant_id == tenant_id, table.c.status != InvoiceStatus.VOID, table.c.period.in_(periods)
        )
    )
    return {row.period: row for row in rows}


def billed_lines(conn: Connection, tenant_id: int, period: str, invoice_id: int | None) -> list[BilledLine]:
    """The lines of the tenant's live invoices that bill ``period``: every line of ``invoice_id`` (the
    period's own invoice) and every line labelled for ``period`` (adjustments), in invoice and line order."""
    lines, inv = _table(InvoiceLine), _table(Invoice)
    rows = conn.execute(
        sa.select(inv.c.id, inv.c.number, lines.c.kind, lines.c.for_period, lines.c.amount_minor, lines.c.detail)
        .join(inv, inv.c.id == lines.c.invoice_id)
        .where(
            inv.c.tenant_id == tenant_id,
            inv.c.status != InvoiceStatus.VOID,
            sa.or_(lines.c.for_period == period, inv.c.id == (invoice_id if invoice_id is not None else -1)),
        )
        .order_by(inv.c.id, lines.c.position)
    )
    return [
        BilledLine(i, number, kind, for_period, amount, detail or {})
        for i, number, kind, for_period, amount, detail in rows
    ]


def tenants_adjusted_for(conn: Connection, period: str, tenant_ids: Sequence[int] | None) -> frozenset[int]:
    """The tenants (of ``tenant_ids``; all when None) whose live invoices have lines labelled for
    ``period`` (adjustments billed on a later invoice)."""
    lines, inv = _table(InvoiceLine), _table(Invoice)
    query = (
        sa.select(inv.c.tenant_id)
        .distinct()
        .join(lines, lines.c.invoice_id == inv.c.id)
        .where(inv.c.status != InvoiceStatus.VOID, lines.c.for_period == period)
    )
    if tenant_ids is not None:
        query = query.where(inv.c.tenant_id.in_(list(tenant_ids)))
    return frozenset(conn.execute(query).scalars())


def by_ref(session: Session, ref: str) -> Invoice | None:
    """An invoice by number (INV-2026-10-000001) or numeric id; None when there is none."""
    invoice = session.exec(select(Invoice).where(Invoice.number == ref)).first()
    if invoice is None and ref.isascii() and ref.isdigit() and int(ref) < 2**31:  # ids are 32-bit
        invoice = session.get(Invoice, int(ref))
    return invoice


def lines_of(session: Session, invoice_id: int | None) -> list[InvoiceLine]:
    """An invoice's lines in position order."""
    query = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(col(InvoiceLine.position))
    return list(session.exec(query))


def with_tenants(
    session: Session,
    *,
    tenant_id: int | None = None,
    period: str | None = None,
    status: str | None = None,
    live_only: bool = False,
) -> list[tuple[Invoice, Tenant]]:
    """Invoices with their tenants, in id order, filtered by tenant, period and status."""
    query = select(Invoice, Tenant).join(Tenant, col(Tenant.id) == col(Invoice.tenant_id)).order_by(col(Invoice.id))
    if tenant_id is not None:
        query = query.where(Invoice.tenant_id == tenant_id)
    if period is not None:
        query = query.where(Invoice.period == period)
    if status:
        query = query.where(Invoice.status == status)
    if live_only:
        query = query.where(Invoice.status != InvoiceStatus.VOID)
    return [(invoice, tenant) for invoice, tenant in session.exec(query)]


def reserve_sequence(conn: Connection, name: str, count: int, *, dry_run: bool) -> int:
    """The first of ``count`` consecutive values of the counter ``name``, in the caller's
    transaction: a rolled-back transaction gives its values back, so numbering has no gaps."""
    table = sa.table("counter", sa.column("name"), sa.column("value"))
    if dry_run:
        return int(conn.execute(sa.select(table.c.value).where(table.c.name == name)).scalar() or 0) + 1
    last = conn.execute(
        sa.update(table).where(table.c.name == name).values(value=table.c.value + count).returning(table.c.value)
    ).scalar()
    if last is None:
        conn.execute(sa.insert(table).values(name=name, value=count))
        last = count
    return int(last) - count + 1


def insert_lines(session: Session, lines: list[dict[str, Any]]) -> None:
    """Invoice lines in one batched INSERT."""
    if lines:
        session.execute(sa.insert(InvoiceLine), lines)


def mark_plans_used(session: Session, plan_ids: set[int]) -> None:
    """Plan versions an invoice was priced under can no longer be edited in place."""
    session.execute(sa.update(Plan).where(col(Plan.id).in_(plan_ids)).values(used=True))


# ---------------------------------------------------------------- usage, as invoicing reads it


def usage_by_tenant(
    conn: Connection, tenant_ids: Sequence[int], start: datetime, end: datetime
) -> Result[int, str, int]:
    """(tenant id, endpoint, units) over [start, end) for the tenants given."""
    return conn.execute(
        sa.select(col(UsageBucket.tenant_id), col(UsageBucket.endpoint), sa.func.sum(col(UsageBucket.units)))
        .where(
            col(UsageBucket.tenant_id).in_(tenant_ids),
            col(UsageBucket.bucket_start) >= int(start.timestamp()),
            col(UsageBucket.bucket_start) < int(end.timestamp()),
        )
        .group_by(col(UsageBucket.tenant_id), col(UsageBucket.endpoint))
    )


def stream_usage(
    conn: Connection, start: datetime, end: datetime, tenant_ids: list[int] | None
) -> Result[int, str, int]:
    """(tenant id, endpoint, units) over [start, end), ascending tenant id, streamed in batches."""
    table = _table(UsageBucket)
    query = (
        sa.select(table.c.tenant_id, table.c.endpoint, sa.func.sum(table.c.units))
        .where(table.c.bucket_start >= int(start.timestamp()), table.c.bucket_start < int(end.timestamp()))
        .group_by(table.c.tenant_id, table.c.endpoint)
        .order_by(table.c.tenant_id)
    )
    if tenant_ids is not None:
        query = query.where(table.c.tenant_id.in_(tenant_ids))
    return conn.execution_options(stream_results=True, yield_per=10_000).execute(query)


def activity(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> Result[str, int, int, int, int, int]:
    """Per endpoint over [start, end): units, events, bucket count, first and last bucket start."""
    table = _table(UsageBucket)
    return conn.execute(
        sa.select(
            table.c.endpoint,
            sa.func.sum(table.c.units),
            sa.func.sum(table.c.events),
            sa.func.count(),
            sa.func.min(table.c.bucket_start),
            sa.func.max(table.c.bucket_start),
        )
        .where(
            table.c.tenant_id == tenant_id,
            table.c.bucket_start >= int(start.timestamp()),
            table.c.bucket_start < int(end.timestamp()),
        )
        .group_by(table.c.endpoint)
    )
