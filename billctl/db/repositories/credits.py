"""Prepaid credits: grants, ledger entries and purchases (issue 13), over a unit of work's session.

Reads return model rows, or the core's plain types (``core_grant``, ``core_entry``); writes add rows
and never commit. ``lock_tenant_credits`` serialises every writer of one tenant's ledger (finalize's
draws, expiry, reversals, grants) on PostgreSQL; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billctl.core import credits as core
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import from_minor
from billctl.db.models import CreditGrant, CreditLedgerEntry, CreditPurchase, Invoice, Tenant


def tenant_by_key(session: Session, key: str) -> Tenant | None:
    return session.exec(select(Tenant).where(Tenant.key == key)).first()


def tenants_with_credits(session: Session) -> list[Tenant]:
    """Tenants that have ever been granted credits, by key."""
    ids = select(CreditGrant.tenant_id).distinct()
    return list(session.exec(select(Tenant).where(col(Tenant.id).in_(ids)).order_by(Tenant.key)))


def tenant_ids_with_grants(session: Session, tenant_ids: Iterable[int] | None = None) -> set[int]:
    """Of ``tenant_ids`` (all when None), those ever granted credits: finalize skips the others."""
    query = select(CreditGrant.tenant_id).distinct()
    if tenant_ids is not None:
        query = query.where(col(CreditGrant.tenant_id).in_(list(tenant_ids)))
    return set(session.exec(query))


def lock_tenant_credits(session: Session, tenant_id: int) -> None:
    """Row-lock the tenant (PostgreSQL) so two transactions never draw on, expire or give back to its
    grants at once: the second waits and then sees the first's entries."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(col(Tenant.id)).where(col(Tenant.id) == tenant_id).with_for_update())


def grants(session: Session, tenant_id: int) -> list[CreditGrant]:
    query = select(CreditGrant).where(CreditGrant.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(CreditGrant.id))))


def entries(session: Session, tenant_id: int) -> list[CreditLedgerEntry]:
    """A tenant's ledger in the order it was written."""
    query = select(CreditLedgerEntry).where(CreditLedgerEntry.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(CreditLedgerEntry.id))))


def entry_keys(session: Session, keys: Iterable[str]) -> set[str]:
    wanted = list(keys)
    if not wanted:
        return set()
    found = session.exec(select(CreditLedgerEntry.key).where(col(CreditLedgerEntry.key).in_(wanted)))
    return set(found)


def add_grant(session: Session, row: CreditGrant) -> CreditGrant:
    session.add(row)
    session.flush()
    return row


def add_entries(session: Session, rows: Sequence[CreditLedgerEntry]) -> None:
    for row in rows:
        session.add(row)
    session.flush()


def invoice_numbers(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.exec(select(Invoice.id, Invoice.number).where(col(Invoice.id).in_(wanted)))
    return {int(i): n for i, n in rows if i is not None}


def invoice_by_number(session: Session, number: str) -> Invoice | None:
    return session.exec(select(Invoice).where(Invoice.number == number)).first()


def live_invoice(session: Session, tenant_id: int, period: str) -> Invoice | None:
    query = select(Invoice).where(
        Invoice.tenant_id == tenant_id, Invoice.period == period, Invoice.status != InvoiceStatus.VOID
    )
    return session.exec(query).first()


def add_purchase(session: Session, row: CreditPurchase) -> CreditPurchase:
    session.add(row)
    session.flush()
    return row


def purchase(session: Session, purchase_id: int) -> CreditPurchase | None:
    return session.get(CreditPurchase, purchase_id)


def grant_of_purchase(session: Session, purchase_id: int) -> CreditGrant | None:
    return session.exec(select(CreditGrant).where(CreditGrant.purchase_id == purchase_id)).first()


# -- the core's plain types --------------------------------------------------------------------------


def core_grant(row: CreditGrant) -> core.Grant:
    assert row.id is not None
    return core.Grant(
        id=row.id,
        currency=row.currency,
        amount=from_minor(row.amount_minor, row.currency),
        kind=core.CreditKind(row.kind),
        effective_at=row.effective_at,
        expires_at=row.expires_at,
        priority=row.priority,
        reason=row.reason,
    )


def core_entry(row: CreditLedgerEntry) -> core.Entry:
    return core.Entry(
        grant_id=row.grant_id,
        kind=core.EntryKind(row.kind),
        amount=from_minor(row.amount_minor, row.currency),
        at=row.at,
        invoice_id=row.invoice_id,
        source=row.source,
    )
