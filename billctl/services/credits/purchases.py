"""Top-ups: a purchase is recorded (pending) when ``credits purchase`` issues its one-off Stripe
invoice; its grant is made when Stripe reports the invoice paid, exactly once (the grant row points at
the purchase through a unique column, and the purchase's state changes in the same transaction).

The Stripe half (the one-off invoice, sync-status and the webhook calling ``purchase_paid``) is wired
in by the Stripe services; these are the local steps they call inside their unit of work."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from billctl.core import credits as core
from billctl.core.money import to_minor
from billctl.db.models import CreditGrant, CreditPurchase, Tenant
from billctl.db.repositories import credits as repo
from billctl.db.uow import UnitOfWork
from billctl.errors import Conflict, NotFound
from billctl.services.credits.common import refusals
from billctl.services.credits.grants import record_grant


def create_purchase(
    uow: UnitOfWork,
    tenant: Tenant,
    *,
    amount: Decimal,
    reason: str,
    actor: str,
    now: datetime,
    priority: int = core.PRIORITY_DEFAULT,
    expires_at: datetime | None = None,
) -> CreditPurchase:
    """A pending purchase of ``amount`` in the tenant's currency (checked like a grant)."""
    assert tenant.id is not None
    with refusals():
        core.validate_grant(
            amount=amount,
            currency=tenant.currency,
            tenant_currency=tenant.currency,
            kind=core.CreditKind.PURCHASED,
            effective_at=now,
            expires_at=expires_at,
            priority=priority,
        )
    return repo.add_purchase(
        uow.session,
        CreditPurchase(
            tenant_id=tenant.id,
            currency=tenant.currency,
            amount_minor=to_minor(amount, tenant.currency),
            priority=priority,
            expires_at=expires_at,
            reason=reason,
            actor=actor,
            created_at=now,
        ),
    )


def purchase_paid(uow: UnitOfWork, purchase_id: int, *, paid_at: datetime, actor: str) -> CreditGrant:
    """Stripe reports the purchase's invoice paid: make its grant (effective at once), or return the
    one already made (a second event, a re-run of sync-status): never two."""
    purchase = repo.purchase(uow.session, purchase_id)
    if purchase is None:
        raise NotFound(f"no credit purchase {purchase_id}", field="purchase")
    repo.lock_tenant_credits(uow.session, purchase.tenant_id)
    existing = repo.grant_of_purchase(uow.session, purchase_id)
    if existing is not None:
        return existing
    if purchase.status == "void":
        raise Conflict(f"credit purchase {purchase_id} was voided; it cannot be paid")
    grant = repo.add_grant(
        uow.session,
        CreditGrant(
            tenant_id=purchase.tenant_id,
            currency=purchase.currency,
            amount_minor=purchase.amount_minor,
            kind=core.CreditKind.PURCHASED,
            priority=purchase.priority,
            effective_at=paid_at,
            expires_at=purchase.expires_at if purchase.expires_at and purchase.expires_at > paid_at else None,
            reason=purchase.reason or f"purchase {purchase_id}",
            purchase_id=purchase_id,
            actor=actor,
        ),
    )
    record_grant(uow.session, grant, actor=actor)
    purchase.status = "paid"
    purchase.paid_at = paid_at
    uow.session.add(purchase)
    return grant
