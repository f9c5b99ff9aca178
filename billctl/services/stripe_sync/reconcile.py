"""``stripe reconcile``: compare local invoices and their credit notes with Stripe; with ``fix``,
refresh the stored Stripe ids and payment status from Stripe (locally only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billctl.core.periods import Period
from billctl.db.repositories import stripe as records
from billctl.services.context import App, audit
from billctl.services.stripe_sync.customers import selected_tenants
from billctl.services.stripe_sync.gateway import reading, state_values
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway


@dataclass
class ReconcileReport:
    drifts: list[m.Drift]
    checked: int
    stripe_invoices: int
    fixed: list[str] = field(default_factory=list)


def reconcile(
    app: App, gw: Gateway, period: Period | None = None, tenant_key: str | None = None, *, fix: bool = False
) -> ReconcileReport:
    """Compare local invoices and their credit notes with Stripe (missing, duplicated, amount or
    status mismatch). Reads only, unless ``fix``: then stored Stripe ids and payment status are
    refreshed from Stripe (locally only)."""
    one = selected_tenants(app, tenant_key) if tenant_key else None
    with reading(app) as session:
        rows = records.invoices_with_tenants(
            session, str(period) if period is not None else None, one[0].id if one else None
        )
        tenants = one if one is not None else records.linked_tenants(session)
    local = [
        m.LocalInvoice(
            inv.number,
            ten.key,
            inv.currency,
            inv.total_minor,
            inv.status,
            inv.stripe_invoice_id,
            inv.stripe_status,
            inv.stripe_error,
        )
        for inv, ten in rows
    ]
    remote: list[dict[str, Any]] = []
    for tenant in tenants:
        if not tenant.stripe_customer_id:
            continue
        for inv in gw.list_invoices(tenant.stripe_customer_id):
            meta = inv.get("metadata") or {}
            if m.META_INVOICE not in meta:
                continue
            if period is not None and meta.get("period") != str(period):
                continue
            remote.append(inv)
    from billctl.services import credit_notes

    drifts = m.reconcile(local, remote) + credit_notes.reconcile(app, gw, rows, remote)
    report = ReconcileReport(drifts=drifts, checked=len(local), stripe_invoices=len(remote))
    if fix:
        _fix(app, report, rows, remote)
    return report


def _fix(app: App, report: ReconcileReport, rows: list[Any], remote: list[dict[str, Any]]) -> None:
    """Store the Stripe id and state of each invoice whose only drift is a stale id or status."""
    drifts = report.drifts
    by_id = {r["id"]: r for r in remote}
    by_number = {inv.number: inv for inv, _ in rows}
    fixable = {
        d.number for d in drifts if d.kind in ("id", "status") and len(d.stripe_ids) == 1 and d.number in by_number
    }
    for number in sorted(fixable):
        if any(d.number == number and d.kind == "duplicate" for d in drifts):
            continue
        stripe_id = next(d.stripe_ids[0] for d in drifts if d.number == number and d.stripe_ids)
        values = {"stripe_invoice_id": stripe_id, **state_values(by_id[stripe_id])}
        with app.uow() as uow:
            records.update_invoice(uow.session, by_number[number].id, **values)
            audit(
                uow.session,
                app,
                "stripe.reconcile.fix",
                "invoice",
                number,
                stripe_invoice=stripe_id,
                status=values["stripe_status"],
            )
        report.fixed.append(number)
    report.drifts = [d for d in drifts if d.number not in report.fixed or d.kind not in ("id", "status")]
