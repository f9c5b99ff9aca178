"""Credit notes into Stripe: a local credit note becomes a Stripe credit note on its invoice,
idempotently (DESIGN.md invariant 9); pending ones are pushed by `stripe push`; drift is reconciled."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from billctl.core.invoice_credits import split_credit
from billctl.core.money import MoneyError, to_stripe_amount
from billctl.core.periods import Period
from billctl.db.models import CreditNote, CreditNoteLine, Invoice, Tenant
from billctl.db.repositories import invoices as repo
from billctl.services.context import App, audit
from billctl.services.credit_notes.queries import cash_parts, notes_by_invoice
from billctl.services.invoices import tenant_id_of

# Stripe invoice states in which a credit note can go to Stripe
FINAL_IN_STRIPE = ("open", "paid", "payment_failed", "uncollectible")


def in_stripe(invoice: Invoice) -> bool:
    """Whether the invoice is final in Stripe, so a credit note can go there."""
    return bool(invoice.stripe_invoice_id) and invoice.stripe_status in FINAL_IN_STRIPE


def gateway_or_none(app: App, dry_run: bool, on_call: Callable[[str], None] | None) -> Any:
    """The Stripe gateway, or None when no key is configured (a bad key still raises)."""
    from billctl.services.stripe_sync import optional_gateway

    return optional_gateway(app, dry_run=dry_run, on_call=on_call)


def _store_note(store: Any, note: CreditNote, **values: Any) -> None:
    with store.tx() as s:
        if s is not None:
            s.execute(sa.update(CreditNote).where(col(CreditNote.id) == note.id).values(**values))


def push_credit_note(
    app: App, gw: Any, note: CreditNote, lines: list[CreditNoteLine], invoice: Invoice, tenant: Tenant, store: Any
) -> Any:
    """Put one local credit note into Stripe as a credit note on its invoice, resuming wherever an
    earlier run stopped; returns a stripe_sync.Outcome."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import Outcome, local_minor
    from billctl.stripe import credit_notes as cn
    from billctl.stripe.mapping import show_amount

    cash = _cash_of(app, note, invoice)  # Stripe credits the cash part only (stripe.credit_notes.cash_part)
    out = Outcome("credit_note", note.number, tenant.key, "pushed", total_minor=cash, currency=note.currency)
    if cash == 0 and note.stripe_credit_note_id is None:
        out.action = out.status = cn.CREDITS_ONLY
        out.note = (
            "all of it went back to prepaid credits (none of it was paid in cash): nothing to credit in Stripe"
        )
        with store.tx() as s:
            if s is not None:
                s.execute(
                    sa.update(CreditNote).where(col(CreditNote.id) == note.id).values(stripe_status=cn.CREDITS_ONLY)
                )
                audit(s, app, "stripe.credit_note.push", "credit_note", note.number, outcome=out.action)
        return out
    remote: dict[str, Any] | None = None
    resumed = note.stripe_push_started_at is not None
    if resumed:  # an earlier run may have created it and died before storing its id
        matches = cn.match_credit_notes(gw.list_credit_notes(invoice=invoice.stripe_invoice_id), note.number)
        if matches:
            remote = dict(matches[0])
            out.action = "found"
            if len(matches) > 1:
                out.note = (
                    f"{len(matches)} Stripe credit notes carry this number ({', '.join(m['id'] for m in matches)})"
                )
    if remote is None:
        stripe_invoice = gw.retrieve_invoice(invoice.stripe_invoice_id)
        if stripe_invoice.get("status") not in ("open", "paid", "uncollectible"):
            raise StripeFailure(
                f"{invoice.number} is {stripe_invoice.get('status')} in Stripe: credit note {note.number} cannot go "
                "there; see `billctl stripe reconcile`"
            )
        note_in = cn.CreditNoteIn(
            number=note.number,
            invoice_number=invoice.number,
            tenant_key=tenant.key,
            currency=note.currency,
            total_minor=note.total_minor,
            reason=note.reason,
            settle=note.settle,
            lines=tuple(cn.NoteLineIn(x.kind, x.invoice_line_position, x.description, x.amount_minor) for x in lines),
        )
        note_in = cn.cash_part(note_in, cash)
        ids: dict[int, str] = {}
        if any(x.invoice_line_position is not None for x in note_in.lines):
            with app.uow(readonly=True) as uow:
                items = {x.position: x.stripe_item_id for x in repo.lines_of(uow.session, invoice.id)}
            ids = cn.line_ids(gw.list_invoice_lines(invoice.stripe_invoice_id), items, invoice.number)
        due = local_minor(stripe_invoice.get("amount_remaining") or 0, note.currency) or 0
        try:
            params = cn.credit_note_params(note_in, str(invoice.stripe_invoice_id), ids, due)  # in Stripe: set
        except KeyError as exc:
            raise StripeFailure(
                f"line {exc.args[0]} of {invoice.number} is not on Stripe invoice {invoice.stripe_invoice_id}; "
                "see `billctl stripe reconcile`"
            ) from None
        except MoneyError as exc:  # an invoice finalized before billctl knew Stripe's rule
            raise StripeFailure(f"{exc}; not sent (credit it in Stripe's Dashboard)") from None
        if not resumed:
            _store_note(store, note, stripe_push_started_at=app.now())  # from now on, look up before creating
        remote = gw.create_credit_note(params, cn.credit_note_key(note.number, params))
        out.action = "completed" if resumed else "pushed"
    values = {
        "stripe_credit_note_id": remote["id"],
        "stripe_number": remote.get("number"),
        "stripe_status": remote.get("status"),
        "stripe_pre_payment_minor": local_minor(remote.get("pre_payment_amount"), note.currency),
        "stripe_post_payment_minor": local_minor(remote.get("post_payment_amount"), note.currency),
    }
    with store.tx() as s:
        if s is not None:
            s.execute(sa.update(CreditNote).where(col(CreditNote.id) == note.id).values(**values))
            audit(s, app, "stripe.credit_note.push", "credit_note", note.number, outcome=out.action, **values)
    out.stripe_id, out.stripe_number, out.status = remote["id"], remote.get("number"), remote.get("status")
    expected = to_stripe_amount(cash, note.currency, check=False)
    if remote.get("total") is not None and remote["total"] != expected and not gw.dry_run:
        out.note += (
            f"Stripe total {show_amount(remote['total'], note.currency)} differs from "
            f"{show_amount(expected, note.currency)}"
        )
    return out


def _cash_of(app: App, note: CreditNote, invoice: Invoice) -> int:
    """What ``note`` gives back in cash (``queries.cash_parts``); a note not written yet (a dry run)
    comes after every note of the invoice."""
    with app.uow(readonly=True) as uow:
        notes = [n for n, _ in notes_by_invoice(uow.session, [_invoice_id(invoice)]).get(_invoice_id(invoice), [])]
    if note.id is None:
        return split_credit(invoice.total_minor, sum(n.total_minor for n in notes), note.total_minor)[0]
    return cash_parts(invoice, notes)[note.id]


def _id(value: int | None) -> int:
    assert value is not None  # rows read from the database
    return value


def _invoice_id(invoice: Invoice) -> int:
    return _id(invoice.id)


def pending(app: App, period: Period | None = None, tenant_key: str | None = None) -> list[int]:
    """Ids of credit notes not in Stripe yet whose invoice is final there, oldest first (not those
    that gave back purchased credits only: nothing to credit in Stripe)."""
    from billctl.stripe.credit_notes import CREDITS_ONLY

    with app.uow(readonly=True) as uow:
        query = (
            select(CreditNote.id)
            .join(Invoice, col(Invoice.id) == col(CreditNote.invoice_id))
            .where(
                col(CreditNote.stripe_credit_note_id).is_(None),
                sa.or_(col(CreditNote.stripe_status).is_(None), col(CreditNote.stripe_status) != CREDITS_ONLY),
                col(Invoice.stripe_invoice_id).is_not(None),
                col(Invoice.stripe_status).in_(FINAL_IN_STRIPE),
            )
        )
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if tenant_key:
            query = query.where(CreditNote.tenant_id == tenant_id_of(uow.session, tenant_key))
        return [note_id for note_id in uow.session.exec(query.order_by(col(CreditNote.id))) if note_id is not None]


def push_pending(
    app: App, gw: Any, store: Any, ids: Sequence[int], on_outcome: Callable[[Any], None] | None = None
) -> list[Any]:
    """Push credit notes by id (``pending``); a failure on one is recorded and the others go on."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import failed_outcome

    outcomes = []
    for note_id in ids:
        with app.uow(readonly=True) as uow:
            session = uow.session
            note = session.get(CreditNote, note_id)
            assert note is not None
            invoice = session.get(Invoice, note.invoice_id)
            tenant = session.get(Tenant, note.tenant_id)
            assert invoice is not None and invoice.id is not None and tenant is not None
            lines = notes_by_invoice(session, [invoice.id])
        note_lines = next(ls for n, ls in lines[invoice.id] if n.id == note_id)
        try:
            outcome = push_credit_note(app, gw, note, note_lines, invoice, tenant, store)
        except StripeFailure as exc:
            outcome = failed_outcome("credit_note", note, tenant.key, note.stripe_credit_note_id, str(exc))
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes


def reconcile(
    app: App, gw: Any, invoices: Sequence[tuple[Invoice, Tenant]], remote_invoices: Iterable[dict[str, Any]]
) -> list[Any]:
    """Drift between the credit notes of ``invoices`` and the Stripe credit notes of their customers'
    invoices (``remote_invoices``: the Stripe invoices reconcile compared): missing, duplicated,
    another total, voided in Stripe, unknown locally."""
    from billctl.stripe import credit_notes as cn

    by_id = {inv.id: (inv, ten) for inv, ten in invoices}
    notes: list[CreditNote] = []
    if by_id:
        with app.uow(readonly=True) as uow:
            query = select(CreditNote).where(col(CreditNote.invoice_id).in_(list(by_id))).order_by(col(CreditNote.id))
            notes = list(uow.session.exec(query))
    cash: dict[int, int] = {}  # what each note credits in Stripe: its cash part
    for invoice_id, (inv, _) in by_id.items():
        cash.update(cash_parts(inv, [n for n in notes if n.invoice_id == invoice_id]))
    local = [
        cn.LocalCreditNote(
            n.number,
            by_id[n.invoice_id][0].number,
            by_id[n.invoice_id][1].key,
            n.currency,
            n.total_minor,
            n.stripe_credit_note_id,
            in_stripe(by_id[n.invoice_id][0]),
            cash[_id(n.id)],
        )
        for n in notes
    ]
    stripe_ids = {r["id"] for r in remote_invoices}
    customers = sorted({ten.stripe_customer_id for _, ten in invoices if ten.stripe_customer_id})
    remote = [
        note
        for customer in customers
        for note in gw.list_credit_notes(customer=customer)
        if note["invoice"] in stripe_ids
    ]
    return cn.reconcile(local, remote)
