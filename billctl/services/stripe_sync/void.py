"""Void in Stripe what was voided here: an open or uncollectible invoice is voided, a draft (never
finalized, so never charged) is deleted, and so is any draft an interrupted push left behind
without its id being stored."""

from __future__ import annotations

from typing import Any

from billctl.db.models import Invoice
from billctl.db.repositories import stripe as records
from billctl.errors import StripeFailure
from billctl.services.context import App, audit
from billctl.services.stripe_sync.gateway import StripeStore, find_remote, state_values
from billctl.services.stripe_sync.outcomes import Outcome
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.status import StripeStatus


def void_in_stripe(
    app: App, gw: Gateway, invoice: Invoice, customer_id: str | None, store: StripeStore, out: Outcome
) -> Outcome:
    """Push of a void invoice: void it in Stripe (or delete its draft); ``out`` says what was done."""
    remote = find_remote(gw, invoice, customer_id, out) if customer_id else None
    if remote is None:
        out.action, out.status = "already in stripe", invoice.stripe_status
        if invoice.stripe_status in (None, StripeStatus.DRAFT):  # nothing left in Stripe: the draft is gone
            _record_void(app, invoice, store, {"stripe_status": StripeStatus.DELETED}, "stripe.invoice.delete", None)
            out.action, out.status = "deleted", StripeStatus.DELETED
        return out
    out.stripe_id = remote["id"]
    if remote.get("status") == StripeStatus.DRAFT:
        try:
            gw.delete_invoice(remote["id"])
        except StripeFailure as exc:
            if exc.status != 404:  # 404: deleted meanwhile (an earlier, interrupted run)
                raise
        deleted = {"stripe_status": StripeStatus.DELETED}
        _record_void(app, invoice, store, deleted, "stripe.invoice.delete", remote["id"])
        out.action, out.status = "deleted", StripeStatus.DELETED
        return out
    if remote.get("status") in (StripeStatus.OPEN, StripeStatus.UNCOLLECTIBLE):
        remote = gw.void_invoice(remote["id"], m.invoice_key(invoice.number, "void"), remote)
        out.action = "voided"
    else:
        out.action = "already in stripe"
    values = state_values(remote)
    _record_void(app, invoice, store, values, "stripe.invoice.void", remote["id"])
    out.status = values["stripe_status"]
    return out


def _record_void(
    app: App, invoice: Invoice, store: StripeStore, values: dict[str, Any], action: str, stripe_id: str | None
) -> None:
    with store.tx() as s:
        if s is not None and invoice.id is not None:
            records.update_invoice(s, invoice.id, **values, stripe_error=None)
            audit(s, app, action, "invoice", invoice.number, stripe_invoice=stripe_id)
