"""Reports over finalized invoices: revenue of a period, and the accounting export (one row per line).

Read-only. Only live invoices count (a void invoice is not revenue); amounts stay integer minor
units per currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from billctl.core.periods import Period
from billctl.core.revenue import InvoiceSummary, Revenue, revenue
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.services import invoices as inv_svc
from billctl.services.context import App


def _plan_of(invoice: Invoice) -> str:
    segments = (invoice.inputs or {}).get("segments") or []
    return segments[-1]["plan"]["code"] if segments else "?"


def _summaries(session: Session, period: Period) -> list[InvoiceSummary]:
    rows = session.exec(
        select(Invoice, Tenant)
        .join(Tenant, Tenant.id == Invoice.tenant_id)
        .where(Invoice.period == str(period), Invoice.status != "void")
        .order_by(Invoice.id)
    )
    return [
        InvoiceSummary(
            tenant=t.key,
            number=i.number,
            plan=_plan_of(i),
            currency=i.currency,
            subtotal_minor=i.subtotal_minor,
            tax_minor=i.tax_minor,
            total_minor=i.total_minor,
        )
        for i, t in rows
    ]


def revenue_report(app: App, period: Period, top: int = 10) -> Revenue:
    with Session(app.engine) as session:
        now = _summaries(session, period)
        before = _summaries(session, period.previous())
    return revenue(str(period), str(period.previous()), now, before, top)


@dataclass
class ExportRow:
    tenant: str
    invoice: str
    period: str
    status: str
    line: int
    kind: str
    description: str
    quantity: str
    unit_price: str | None
    amount_minor: int
    tax_rate: str
    currency: str


def export_lines(app: App, period: Period, tenant_key: str | None = None) -> list[ExportRow]:
    """Every line of every live invoice of ``period``, in invoice and line order."""
    with Session(app.engine) as session:
        query = (
            select(Invoice, Tenant, InvoiceLine)
            .join(Tenant, Tenant.id == Invoice.tenant_id)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
            .where(Invoice.period == str(period), Invoice.status != "void")
            .order_by(Invoice.id, InvoiceLine.position)
        )
        if tenant_key:
            query = query.where(Invoice.tenant_id == inv_svc.billed_tenants(session, tenant_key)[0].id)
        return [
            ExportRow(
                tenant=t.key,
                invoice=i.number,
                period=i.period,
                status=i.status,
                line=x.position,
                kind=x.kind,
                description=x.description,
                quantity=x.quantity,
                unit_price=x.unit_price,
                amount_minor=x.amount_minor,
                tax_rate=str((i.inputs or {}).get("tax_rate", t.tax_rate)),
                currency=i.currency,
            )
            for i, t, x in session.exec(query)
        ]
