"""Credit notes as stored: by invoice, what they took, listed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billctl.core import credit as core
from billctl.core.invoice_credits import split_credit
from billctl.core.periods import Period
from billctl.db.models import CreditNote, CreditNoteLine, Invoice, Tenant
from billctl.services.context import App
from billctl.services.invoices import find_invoice, tenant_id_of


def _id(value: int | None) -> int:
    assert value is not None  # rows read from the database
    return value


def notes_by_invoice(
    session: Session, invoice_ids: Sequence[int]
) -> dict[int, list[tuple[CreditNote, list[CreditNoteLine]]]]:
    notes: dict[int, list[tuple[CreditNote, list[CreditNoteLine]]]] = defaultdict(list)
    if not invoice_ids:
        return notes
    query = select(CreditNote).where(col(CreditNote.invoice_id).in_(invoice_ids)).order_by(col(CreditNote.id))
    rows = list(session.exec(query))
    by_note: dict[int, list[CreditNoteLine]] = defaultdict(list)
    if rows:
        for line in session.exec(
            select(CreditNoteLine)
            .where(col(CreditNoteLine.credit_note_id).in_([n.id for n in rows]))
            .order_by(col(CreditNoteLine.credit_note_id), col(CreditNoteLine.position))
        ):
            by_note[_id(line.credit_note_id)].append(line)
    for note in rows:
        notes[note.invoice_id].append((note, by_note[_id(note.id)]))
    return notes


def _as_core(lines: Iterable[CreditNoteLine]) -> core.Note:
    return core.Note(
        tuple(core.NoteLine(x.kind, x.invoice_line_position, x.description, x.amount_minor) for x in lines)
    )


def credited(session: Session, invoice_ids: Sequence[int]) -> dict[int, core.Credited]:
    """What the credit notes of each invoice took (invoices without any are left out)."""
    return {
        invoice_id: core.Credited.of(_as_core(lines) for _, lines in notes)
        for invoice_id, notes in notes_by_invoice(session, invoice_ids).items()
    }


def cash_parts(invoice: Invoice, notes: Iterable[CreditNote]) -> dict[int, int]:
    """What each of ``invoice``'s credit notes gives back in cash, by note id: cash first, in the
    order they were issued (``split_credit``); the rest of each went back to purchased credits. In
    Stripe a credit note credits that part only: Stripe's invoice total is what was due in cash."""
    out: dict[int, int] = {}
    before = 0
    for note in sorted(notes, key=lambda n: _id(n.id)):
        out[_id(note.id)] = split_credit(invoice.total_minor, before, note.total_minor)[0]
        before += note.total_minor
    return out


def credited_totals(app: App, invoice_ids: Sequence[int]) -> dict[int, int]:
    """Total credited per invoice (minor units, tax included); invoices without credit notes left out."""
    if not invoice_ids:
        return {}
    with app.uow(readonly=True) as uow:
        rows = uow.session.exec(
            select(CreditNote.invoice_id, sa.func.sum(CreditNote.total_minor))
            .where(col(CreditNote.invoice_id).in_(invoice_ids))
            .group_by(col(CreditNote.invoice_id))
        )
        return {invoice_id: int(total) for invoice_id, total in rows}


def notes_of(app: App, invoice_id: int) -> list[tuple[CreditNote, list[CreditNoteLine]]]:
    """An invoice's credit notes with their lines, oldest first."""
    with app.uow(readonly=True) as uow:
        return notes_by_invoice(uow.session, [invoice_id]).get(invoice_id, [])


# ---------------------------------------------------------------- listing


@dataclass
class NoteRow:
    note: CreditNote
    invoice: Invoice
    tenant: Tenant
    lines: list[CreditNoteLine] = field(default_factory=list)


def list_notes(
    app: App, tenant_key: str | None = None, period: Period | None = None, invoice_ref: str | None = None
) -> list[NoteRow]:
    with app.uow(readonly=True) as uow:
        session = uow.session
        query = (
            select(CreditNote, Invoice, Tenant)
            .join(Invoice, col(Invoice.id) == col(CreditNote.invoice_id))
            .join(Tenant, col(Tenant.id) == col(CreditNote.tenant_id))
            .order_by(col(CreditNote.id))
        )
        if tenant_key:
            query = query.where(CreditNote.tenant_id == tenant_id_of(session, tenant_key))
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if invoice_ref:
            query = query.where(CreditNote.invoice_id == find_invoice(session, invoice_ref).id)
        rows = [NoteRow(n, i, t) for n, i, t in session.exec(query)]
        lines = notes_by_invoice(session, sorted({_id(r.invoice.id) for r in rows}))
    by_id = {n.id: ls for notes in lines.values() for n, ls in notes}
    for row in rows:
        row.lines = by_id.get(row.note.id, [])
    return rows
