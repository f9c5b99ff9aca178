"""The Stripe side of voiding an invoice (DESIGN.md invariant 11): what refuses a void, and asking
Stripe first. The local void itself is ``billctl.services.invoices.void_invoice``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from billctl.core.lifecycle import LIVE, InvoiceStatus
from billctl.core.money import format_amount, from_minor
from billctl.db.models import CreditNote, Invoice, Tenant
from billctl.errors import ConfigError, Conflict
from billctl.services.context import App
from billctl.services.credit_notes.push import gateway_or_none


def check_voidable(session: Session, invoice: Invoice) -> None:
    """What refuses a void whatever Stripe says: state, credit notes, a payment already recorded."""
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"invoice {invoice.number} is already void")
    if invoice.status not in LIVE:  # a held one (e.g. a stolen key's usage) may be voided
        raise Conflict(f"invoice {invoice.number} is {invoice.status} and cannot be voided here")
    notes = list(session.exec(select(CreditNote.number).where(CreditNote.invoice_id == invoice.id)))
    if notes:
        raise Conflict(
            f"invoice {invoice.number} has credit note(s) {', '.join(notes)}: voiding it would correct it twice",
            hint=f"credit what is left instead: `billctl invoices credit {invoice.number} --reason ...`",
        )
    if invoice.stripe_status == "paid" or (invoice.stripe_amount_paid or 0) > 0:
        raise _paid(invoice.number, invoice.stripe_status, invoice.stripe_amount_paid, invoice.currency)


def _paid(number: str, status: str | None, paid: int | None, currency: str) -> Conflict:
    how = "paid" if status == "paid" else f"partly paid ({format_amount(from_minor(paid or 0, currency), currency)})"
    return Conflict(
        f"invoice {number} is {how} in Stripe: voiding it and finalizing the period again would bill the "
        "customer twice",
        hint=f"correct it with a credit note: `billctl invoices credit {number} --reason ...` "
        "(refund, balance credit or out of band, see --help)",
    )


def void_in_stripe_first(
    app: App, invoice: Invoice, tenant: Tenant, *, dry_run: bool, on_call: Callable[[str], None] | None = None
) -> str:
    """Before a local void of an invoice that is (or may be) in Stripe: ask Stripe. Paid or partly
    paid: refused (Conflict, exit 9). Open or uncollectible: voided in Stripe now (a payment cannot
    come after). A draft (an interrupted push) cannot be paid. Not found: nothing there. Without a
    key billctl cannot know, so it refuses (ConfigError, exit 4). Returns what was done."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import StripeStore, state_values
    from billctl.stripe import credit_notes as cn
    from billctl.stripe import mapping as m

    gw = gateway_or_none(app, dry_run, on_call)
    if gw is None:
        raise ConfigError(
            f"invoice {invoice.number} was pushed to Stripe and billctl cannot check whether it was paid: no Stripe "
            "key configured",
            hint="set STRIPE_API_KEY so void can ask Stripe first, or correct it with `billctl invoices credit`",
        )
    remote: dict[str, Any] | None = None
    if invoice.stripe_invoice_id:
        try:
            remote = gw.retrieve_invoice(invoice.stripe_invoice_id)
        except StripeFailure as exc:
            if exc.status != 404:
                raise
    if remote is None and tenant.stripe_customer_id:
        found = m.match_invoices(gw.list_invoices(tenant.stripe_customer_id), invoice.number)
        live = [x for x in found if x.get("status") != "void"] or found
        remote = dict(live[-1]) if live else None
    if remote is None or remote.get("deleted"):
        return "not in Stripe"
    store = StripeStore(app, dry_run)
    values = {"stripe_invoice_id": remote["id"], **state_values(remote)}
    invoice_id = invoice.id
    assert invoice_id is not None
    store.invoice(invoice_id, **values)
    if cn.paid_in_stripe(remote):
        raise _paid(invoice.number, remote.get("status"), values["stripe_amount_paid"], invoice.currency)
    if remote.get("status") in ("open", "uncollectible"):
        remote = gw.void_invoice(remote["id"], m.invoice_key(invoice.number, "void"), remote)
        store.invoice(invoice_id, **state_values(remote))
        return f"voided in Stripe ({remote['id']})"
    return f"{remote.get('status')} in Stripe ({remote['id']})"
