"""The Stripe side of the records: Stripe ids and payment state on invoices, lines, tenants and credits
purchases, the events already applied and the events cursor.

Which Stripe statuses count as what (unfinished, collectable, needing attention) is the services'
business: they pass the statuses in (this module knows the columns, not Stripe's rules).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billctl.core.lifecycle import InvoiceStatus
from billctl.db.models import CreditPurchase, Invoice, InvoiceLine, StripeCursor, StripeEvent, Tenant
from billctl.errors import NotFound

# ---------------------------------------------------------------- invoices and lines


def invoice_and_tenant(session: Session, invoice_id: int) -> tuple[Invoice, Tenant]:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice id {invoice_id} does not exist", field="invoice")
    tenant = session.get(Tenant, invoice.tenant_id)
    if tenant is None:
        raise NotFound(f"tenant id {invoice.tenant_id} of invoice {invoice.number} does not exist", field="tenant")
    return invoice, tenant


def invoice_lines(session: Session, invoice_id: int) -> list[InvoiceLine]:
    """The invoice's lines in their order on the invoice."""
    query = select(InvoiceLine).where(col(InvoiceLine.invoice_id) == invoice_id).order_by(col(InvoiceLine.position))
    return list(session.exec(query))


def update_invoice(session: Session, invoice_id: int, **values: Any) -> None:
    """Set Stripe columns (ids, payment state, push error) of one invoice."""
    session.execute(sa.update(Invoice).where(col(Invoice.id) == invoice_id).values(**values))


def set_item_id(session: Session, line_id: int, item_id: str) -> None:
    session.execute(sa.update(InvoiceLine).where(col(InvoiceLine.id) == line_id).values(stripe_item_id=item_id))


def pending_invoice_ids(
    session: Session,
    *,
    unfinished: Collection[str],
    to_void: Collection[str],
    period: str | None = None,
    tenant_id: int | None = None,
) -> list[tuple[int, int]]:
    """(invoice id, tenant id), oldest first, of: finalized invoices not in Stripe or whose Stripe status
    is in ``unfinished``; void ones whose stored Stripe invoice is in ``to_void``; and void ones whose
    push started but whose Stripe invoice was never recorded (it may have left a draft)."""
    status, stripe_status = col(Invoice.status), col(Invoice.stripe_status)
    query = select(col(Invoice.id), col(Invoice.tenant_id)).where(
        sa.or_(
            sa.and_(
                status == InvoiceStatus.FINALIZED,
                sa.or_(stripe_status.is_(None), stripe_status.in_(sorted(unfinished))),
            ),
            sa.and_(
                status == InvoiceStatus.VOID,
                col(Invoice.stripe_invoice_id).is_not(None),
                stripe_status.in_(sorted(to_void)),
            ),
            sa.and_(
                status == InvoiceStatus.VOID,
                col(Invoice.stripe_push_started_at).is_not(None),
                stripe_status.is_(None),
            ),
        )
    )
    if period is not None:
        query = query.where(col(Invoice.period) == period)
    if tenant_id is not None:
        query = query.where(col(Invoice.tenant_id) == tenant_id)
    return [(invoice_id, tid) for invoice_id, tid in session.exec(query.order_by(col(Invoice.id))) if invoice_id]


def invoices_with_tenants(
    session: Session, period: str | None = None, tenant_id: int | None = None
) -> list[tuple[Invoice, Tenant]]:
    """Every invoice (of ``period``, of one tenant) with its tenant, oldest first."""
    query = select(Invoice, Tenant).join(Tenant, col(Tenant.id) == col(Invoice.tenant_id)).order_by(col(Invoice.id))
    if period is not None:
        query = query.where(col(Invoice.period) == period)
    if tenant_id is not None:
        query = query.where(col(Tenant.id) == tenant_id)
    return [(inv, ten) for inv, ten in session.exec(query)]


def invoices_in_status(session: Session, stripe_statuses: Iterable[str]) -> list[tuple[Invoice, Tenant]]:
    """Live (not void) invoices whose Stripe status is one of ``stripe_statuses``, with their tenants."""
    query = (
        select(Invoice, Tenant)
        .join(Tenant, col(Tenant.id) == col(Invoice.tenant_id))
        .where(col(Invoice.stripe_status).in_(sorted(stripe_statuses)), col(Invoice.status) != InvoiceStatus.VOID)
        .order_by(col(Invoice.id))
    )
    return [(inv, ten) for inv, ten in session.exec(query)]


def invoice_for_stripe(session: Session, stripe_invoice_id: str | None, number: str | None) -> Invoice | None:
    """The local invoice of a Stripe invoice: by its stored id, else by the number in its metadata
    (only if that invoice has no other Stripe invoice recorded)."""
    invoice = session.exec(select(Invoice).where(col(Invoice.stripe_invoice_id) == stripe_invoice_id)).first()
    if invoice is None and number:
        candidate = session.exec(select(Invoice).where(col(Invoice.number) == number)).first()
        if candidate is not None and candidate.stripe_invoice_id in (None, stripe_invoice_id):
            invoice = candidate
    return invoice


# ---------------------------------------------------------------- credits purchases (issue 13)


def purchase_and_tenant(session: Session, purchase_id: int) -> tuple[CreditPurchase, Tenant]:
    purchase = session.get(CreditPurchase, purchase_id)
    if purchase is None:
        raise NotFound(f"no credit purchase {purchase_id}", field="purchase")
    tenant = session.get(Tenant, purchase.tenant_id)
    if tenant is None:
        raise NotFound(
            f"tenant id {purchase.tenant_id} of credit purchase {purchase_id} does not exist", field="tenant"
        )
    return purchase, tenant


def update_purchase(session: Session, purchase_id: int, **values: Any) -> None:
    """Set Stripe columns (invoice id, status, push start) of one purchase."""
    session.execute(sa.update(CreditPurchase).where(col(CreditPurchase.id) == purchase_id).values(**values))


def pending_purchase_ids(
    session: Session, *, unfinished: Collection[str], tenant_id: int | None = None
) -> list[tuple[int, int]]:
    """(purchase id, tenant id), oldest first, of pending purchases not in Stripe yet or whose Stripe
    invoice's status is in ``unfinished`` (a push that stopped before finalizing)."""
    stripe_status = col(CreditPurchase.stripe_status)
    query = select(col(CreditPurchase.id), col(CreditPurchase.tenant_id)).where(
        col(CreditPurchase.status) == "pending",
        sa.or_(stripe_status.is_(None), stripe_status.in_(sorted(unfinished))),
    )
    if tenant_id is not None:
        query = query.where(col(CreditPurchase.tenant_id) == tenant_id)
    return [(pid, tid) for pid, tid in session.exec(query.order_by(col(CreditPurchase.id))) if pid]


def purchase_for_stripe(
    session: Session, stripe_invoice_id: str | None, purchase_id: int | None
) -> CreditPurchase | None:
    """The purchase of a Stripe invoice: by its stored id, else by the purchase id in its metadata
    (only if that purchase has no other Stripe invoice recorded)."""
    found = None
    if stripe_invoice_id:
        query = select(CreditPurchase).where(col(CreditPurchase.stripe_invoice_id) == stripe_invoice_id)
        found = session.exec(query).first()
    if found is None and purchase_id is not None:
        candidate = session.get(CreditPurchase, purchase_id)
        if candidate is not None and candidate.stripe_invoice_id in (None, stripe_invoice_id):
            found = candidate
    return found


# ---------------------------------------------------------------- tenants


def link_customer(session: Session, tenant_id: int, customer_id: str) -> None:
    session.execute(sa.update(Tenant).where(col(Tenant.id) == tenant_id).values(stripe_customer_id=customer_id))


def tenants_by_id(session: Session, ids: Collection[int]) -> dict[int, Tenant]:
    if not ids:
        return {}
    return {t.id: t for t in session.exec(select(Tenant).where(col(Tenant.id).in_(sorted(ids)))) if t.id is not None}


def linked_tenants(session: Session) -> list[Tenant]:
    """Tenants with a Stripe customer, in id order."""
    query = select(Tenant).where(col(Tenant.stripe_customer_id).is_not(None)).order_by(col(Tenant.id))
    return list(session.exec(query))


# ---------------------------------------------------------------- events and the cursor


def event_applied(session: Session, event_id: str) -> bool:
    return session.get(StripeEvent, event_id) is not None


def record_event(
    session: Session, event_id: str, event_type: str, created: int, source: str, invoice_number: str | None
) -> None:
    session.add(
        StripeEvent(id=event_id, type=event_type[:64], created=created, source=source, invoice_number=invoice_number)
    )


def cursor(session: Session, name: str) -> StripeCursor | None:
    return session.get(StripeCursor, name)


def move_cursor(session: Session, name: str, event_id: str, created: int, now: datetime) -> StripeCursor:
    """The cursor ``name`` now points at ``event_id`` (created, or moved)."""
    found = session.get(StripeCursor, name)
    if found is None:
        found = StripeCursor(name=name, event_id=event_id, created=created)
    else:
        found.event_id, found.created, found.updated_at = event_id, created, now
    session.add(found)
    return found
