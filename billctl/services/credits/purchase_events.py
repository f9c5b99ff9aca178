"""What Stripe reports about a credits purchase's one-off invoice, applied to the purchase: the grant
is made when Stripe reports the invoice paid, exactly once (``purchase_paid``: the grant row points at
the purchase through a unique column), whichever path reports it first (``stripe sync-status``, the
webhook receiver, or the push that saw it paid at once) and however often.

The purchase's local status: ``pending`` until Stripe reports an outcome; ``paid`` (its grant made);
``void`` (the Stripe invoice was voided: never paid, no grant); ``uncollectible`` (Stripe gave up
collecting: no grant, but Stripe still accepts a payment of an uncollectible invoice, and if it
reports one later the grant is made then).

Called inside the caller's unit of work (``apply_event`` in ``stripe_sync.status``, push's store), so
the Stripe state, the grant and the event's id commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from billctl.db.models import CreditGrant, CreditPurchase
from billctl.db.uow import UnitOfWork
from billctl.services.context import App, audit
from billctl.services.credits.purchases import purchase_paid
from billctl.stripe.status import STATUS_RANK, StripeStatus

PENDING, PAID, VOID, UNCOLLECTIBLE = "pending", "paid", "void", "uncollectible"


def paid_at(obj: dict[str, Any], fallback: datetime) -> datetime:
    """When Stripe says the invoice was paid (``status_transitions.paid_at``), else ``fallback``."""
    at = (obj.get("status_transitions") or {}).get("paid_at")
    return datetime.fromtimestamp(int(at), UTC) if isinstance(at, int) and at > 0 else fallback


@dataclass(frozen=True)
class PurchaseState:
    before: str | None  # the Stripe status recorded before
    applied: bool  # False: older than what was recorded
    note: str
    grant: CreditGrant | None  # the purchase's grant, once paid


def apply_purchase_state(
    session: Session, app: App, purchase: CreditPurchase, tenant_key: str, obj: dict[str, Any], status: str, **why: Any
) -> PurchaseState:
    """Record the Stripe status ``status`` of the purchase's invoice ``obj`` and act on it (paid: the
    grant). Never steps back (a late ``open`` after ``paid`` changes nothing); a grant is never made
    twice."""
    assert purchase.id is not None
    before = purchase.stripe_status
    if before is not None and STATUS_RANK.get(status, 0) < STATUS_RANK.get(before, 0):
        return PurchaseState(before, False, "older than the recorded state", None)
    purchase.stripe_invoice_id = purchase.stripe_invoice_id or obj.get("id")
    purchase.stripe_status = status
    note, grant = "", None
    if status == StripeStatus.PAID and purchase.status != VOID:
        grant = purchase_paid(UnitOfWork(session), purchase.id, paid_at=paid_at(obj, app.now()), actor=app.actor)
        note = f"paid: credits granted (grant {grant.id})"
    elif status == StripeStatus.PAID:
        note = "paid in Stripe, but the purchase was voided: no grant (refund it in Stripe)"
    elif status in (StripeStatus.VOID, StripeStatus.UNCOLLECTIBLE) and purchase.status != PAID:
        purchase.status = VOID if status == StripeStatus.VOID else UNCOLLECTIBLE
        note = "no credits granted"
    session.add(purchase)
    if before != status:
        audit(
            session,
            app,
            "stripe.credit_purchase.status",
            "tenant",
            tenant_key,
            purchase=purchase.id,
            before=before,
            after=status,
            grant=grant.id if grant is not None else None,
            **why,
        )
    return PurchaseState(before, True, note, grant)
