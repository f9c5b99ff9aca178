"""Void: a finalized invoice nobody has paid is voided so its period can be finalized again
(DESIGN.md invariant 11); the prepaid credits it drew go back to their grants in the same
transaction. The Stripe side (ask Stripe first, void it there) is
``credit_notes.void_in_stripe_first``."""

from __future__ import annotations

from collections.abc import Callable

from billctl.core.lifecycle import transition
from billctl.db.models import Invoice
from billctl.errors import BadInput
from billctl.services.context import App, audit
from billctl.services.credits import return_credits
from billctl.services.invoices.queries import get_invoice
from billctl.services.usage import lock_tenants


def void_invoice(
    app: App, ref: str, reason: str, *, dry_run: bool = False, on_call: Callable[[str], None] | None = None
) -> tuple[Invoice, str]:
    """Void a finalized invoice so its period can be finalized again; returns it and what was done
    in Stripe. Refused (Conflict, exit 9) for an invoice with credit notes or one Stripe reports paid
    or partly paid (correct those with a credit note): an invoice that was pushed is checked in
    Stripe first and, if open there, voided there before it is voided here (see
    ``credit_notes.void_in_stripe_first``)."""
    from billctl.services import credit_notes

    if not reason.strip():
        raise BadInput("a reason is required to void an invoice", field="reason")
    invoice, tenant, _ = get_invoice(app, ref)
    with app.uow() as uow:
        credit_notes.check_voidable(uow.session, invoice)
    in_stripe = "not pushed"
    if invoice.stripe_invoice_id or invoice.stripe_push_started_at:
        in_stripe = credit_notes.void_in_stripe_first(app, invoice, tenant, dry_run=dry_run, on_call=on_call)
    if dry_run:
        return invoice, in_stripe
    with app.uow() as uow:
        session = uow.session
        assert tenant.id is not None
        lock_tenants(uow.connection, [tenant.id], exclusive=True)  # as a credit note does
        current = session.get(Invoice, invoice.id)
        assert current is not None
        credit_notes.check_voidable(session, current)  # again, in the transaction that voids
        current.status = transition(current.status, "void", number=current.number)
        current.void_reason = reason.strip()
        current.voided_at = app.now()
        session.add(current)
        # every prepaid credit it drew goes back to its grant, in this transaction (once: keyed by invoice)
        returned = return_credits(uow, current, source="void", at=app.now(), actor=app.actor)
        audit(
            session,
            app,
            "invoice.void",
            "invoice",
            current.number,
            reason=reason.strip(),
            tenant=tenant.key,
            period=current.period,
            stripe=in_stripe,
            **({"credits_returned": {str(r.grant_id): str(r.amount) for r in returned}} if returned else {}),
        )
    return current, in_stripe
