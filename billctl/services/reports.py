"""Reports over finalized invoices: revenue of a period, and the accounting export (one row per line).

Read-only. Only live invoices count (a void invoice is not revenue), net of their credit notes;
the export has a row per credit note line too (negative amounts). Amounts stay integer minor
units per currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from billctl.core.credit import Credited
from billctl.core.invoice import plan_code_of
from billctl.core.invoice_credits import InputCredit, promotional_drawn, purchased_drawn, split_credit
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import to_minor
from billctl.core.periods import Period
from billctl.core.revenue import InvoiceSummary, Revenue, revenue
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.db.repositories import invoices as repo
from billctl.services import credit_notes
from billctl.services.context import App
from billctl.services.invoices import tenant_id_of


def _ids(rows: list[tuple[Invoice, Tenant]]) -> list[int]:
    return [i.id for i, _ in rows if i.id is not None]


def _summary(i: Invoice, t: Tenant, took: Credited) -> InvoiceSummary:
    """One invoice net of its credit notes; its prepaid credits from its stored inputs. A credit
    note gives back cash first, then what purchased credits paid (``split_credit``)."""
    drawn = tuple(InputCredit.from_json(c) for c in (i.inputs or {}).get("credits", []))
    promotional = to_minor(promotional_drawn(drawn), i.currency)
    purchased = to_minor(purchased_drawn(drawn), i.currency)
    _, credits_back = split_credit(i.total_minor, 0, took.total)
    return InvoiceSummary(
        tenant=t.key,
        number=i.number,
        plan=plan_code_of(i.inputs),
        currency=i.currency,
        subtotal_minor=i.subtotal_minor - took.net,
        tax_minor=i.tax_minor - took.tax,
        total_minor=i.subtotal_minor + i.tax_minor - took.total,  # with tax (before purchased credits)
        credited_minor=took.net,
        promotional_minor=promotional,
        purchased_minor=purchased - credits_back,
    )


def _summaries(session: Session, period: Period) -> list[InvoiceSummary]:
    rows = repo.with_tenants(session, period=str(period), live_only=True)
    credited = credit_notes.credited(session, _ids(rows))
    none = Credited()
    return [_summary(i, t, credited.get(i.id, none) if i.id is not None else none) for i, t in rows]


def revenue_report(app: App, period: Period, top: int = 10) -> Revenue:
    with app.uow(readonly=True) as uow:
        now = _summaries(uow.session, period)
        before = _summaries(uow.session, period.previous())
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
    credit_note: str = ""  # a credit note's row: its number (amounts negative)


def _export_row(
    i: Invoice,
    t: Tenant,
    line: int,
    kind: str,
    description: str,
    quantity: str,
    unit_price: str | None,
    amount_minor: int,
    credit_note: str = "",
) -> ExportRow:
    return ExportRow(
        tenant=t.key,
        invoice=i.number,
        period=i.period,
        status=i.status,
        line=line,
        kind=kind,
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        amount_minor=amount_minor,
        tax_rate=str((i.inputs or {}).get("tax_rate", t.tax_rate)),
        currency=i.currency,
        credit_note=credit_note,
    )


def export_lines(app: App, period: Period, tenant_key: str | None = None) -> list[ExportRow]:
    """Every line of every live invoice of ``period``, in invoice and line order."""
    with app.uow(readonly=True) as uow:
        session = uow.session
        query = (
            select(Invoice, Tenant, InvoiceLine)
            .join(Tenant, col(Tenant.id) == col(Invoice.tenant_id))
            .join(InvoiceLine, col(InvoiceLine.invoice_id) == col(Invoice.id))
            .where(Invoice.period == str(period), Invoice.status != InvoiceStatus.VOID)
            .order_by(col(Invoice.id), col(InvoiceLine.position))
        )
        if tenant_key:
            query = query.where(Invoice.tenant_id == tenant_id_of(session, tenant_key))
        rows: list[ExportRow] = []
        invoices: dict[int, tuple[Invoice, Tenant]] = {}
        for i, t, x in session.exec(query):
            assert i.id is not None
            invoices[i.id] = (i, t)
            rows.append(_export_row(i, t, x.position, x.kind, x.description, x.quantity, x.unit_price, x.amount_minor))
        notes = credit_notes.notes_by_invoice(session, list(invoices))
    # each invoice's credit notes right after its lines: kind credit (or credit_tax), negative amounts
    order = {number: index for index, number in enumerate(dict.fromkeys(r.invoice for r in rows))}
    for invoice_id, pairs in notes.items():
        i, t = invoices[invoice_id]
        for note, lines in pairs:
            rows.extend(
                _export_row(
                    i,
                    t,
                    x.position,
                    "credit_tax" if x.kind == "tax" else "credit",
                    f"{note.number}: {x.description} ({note.reason})",
                    "1",
                    None,
                    -x.amount_minor,
                    note.number,
                )
                for x in lines
            )
    rows.sort(key=lambda r: (order[r.invoice], r.credit_note, r.line))
    return rows
