"""Issuing a credit note on a finalized invoice (DESIGN.md invariant 11).

A credit note is planned by the pure ``billctl.core.credit`` from the invoice and its earlier
credit notes, under the tenant's lock (two credit notes at once cannot both take what is left),
and written with its number, lines and audit record in one transaction. On an invoice that drew
purchased credits, what the note credits beyond what was due in cash goes back to those credits in
the same transaction (cash first: ``billctl.core.invoice_credits.split_credit``), once per note. Then, if its invoice is
final in Stripe and a key is configured, it goes to Stripe (``push.push_credit_note``); if not,
``stripe push`` takes it later (after the invoice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from billctl.core import credit as core
from billctl.core.invoice_credits import split_credit
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import (
    MoneyError,
    billing_rule,
    billing_unit,
    fits_minor_unit,
    format_amount,
    from_minor,
    parse_decimal,
    to_minor,
)
from billctl.core.periods import Period
from billctl.db.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, Tenant
from billctl.errors import BadInput, Conflict, ref
from billctl.services.context import App, audit
from billctl.services.credit_notes.push import gateway_or_none, in_stripe, push_credit_note
from billctl.services.credit_notes.queries import credited, notes_of
from billctl.services.credits import return_credits
from billctl.services.invoices import get_invoice, reserve_sequence
from billctl.services.usage import lock_tenants
from billctl.stripe.credit_notes import CREDITS_ONLY


def _id(value: int | None) -> int:
    assert value is not None  # rows read from the database
    return value


SETTLE_CHOICES = ("refund", "balance", "out-of-band")
DEFAULT_SETTLE = "balance"


@dataclass
class Issued:
    note: CreditNote
    lines: list[CreditNoteLine]
    invoice: Invoice
    tenant: Tenant
    credited_before: int  # total credited on the invoice before this note
    dry_run: bool
    stripe: Any = None  # stripe_sync.Outcome when it went to Stripe now (or would, in a dry run)
    pending: str = ""  # why it is not in Stripe yet
    resumed: bool = False  # the same credit note, issued by an earlier run that stopped, completed now
    credits_returned_minor: int = 0  # of the note's total, given back as purchased credits (not cash)

    @property
    def left_minor(self) -> int:
        """What is left to credit: of the subtotal and tax (the total before purchased credits)."""
        billed = self.invoice.subtotal_minor + self.invoice.tax_minor
        return billed - self.credited_before - self.note.total_minor


def _facts(invoice: Invoice, lines: Iterable[InvoiceLine]) -> core.Invoice:
    rows = tuple(core.InvoiceLine(x.position, x.kind, x.description, x.amount_minor) for x in lines)
    step = to_minor(billing_unit(invoice.currency), invoice.currency)  # KWD 10, ISK 100, USD 1
    return core.Invoice(invoice.number, invoice.subtotal_minor, invoice.tax_minor, rows, step)


def parse_amount(text: str, currency: str) -> int:
    """An amount to credit in minor units; finer than Stripe charges in ``currency`` (its billing unit: KWD 0.01,
    ISK and JPY 1) is refused, naming the rule."""
    try:
        amount = parse_decimal(text, field="amount")
    except MoneyError as exc:
        raise BadInput(f"amount {text!r}: {exc}", hint=f"write it in {currency}, e.g. 12", field="amount") from None
    if not fits_minor_unit(amount, currency):
        unit = billing_unit(currency)
        raise BadInput(
            f"amount {text!r} is finer than {currency} can be credited ({billing_rule(currency)})",
            hint=f"give a multiple of {unit} {currency}",
            field="amount",
        )
    return to_minor(amount, currency)


def _settle(value: str) -> str:
    if value not in SETTLE_CHOICES:
        raise BadInput(f"settle {value!r} is not one of {', '.join(SETTLE_CHOICES)}", field="settle")
    return value.replace("-", "_")


def _creditable(invoice: Invoice) -> None:
    """A credit note corrects a finalized invoice, and only one."""
    fix = f"see `billctl invoices show {invoice.number}`"
    if invoice.status == InvoiceStatus.VOID:
        raise BadInput(
            f"{invoice.number} is void: it bills nothing, so there is nothing to credit",
            hint="credit the invoice that replaced it (`billctl invoices list --period " + invoice.period + "`)",
        )
    if invoice.status == InvoiceStatus.HELD:
        raise BadInput(
            f"{invoice.number} is held ({invoice.hold_reason or 'by run-monthly'}): not sent to anyone yet",
            hint="release it first, or void it and finalize the period again",
        )
    if invoice.status != InvoiceStatus.FINALIZED:
        raise BadInput(f"{invoice.number} is {invoice.status}: only a finalized invoice can be credited", hint=fix)


def issue(
    app: App,
    ref: str,
    *,
    reason: str,
    lines: Sequence[int] = (),
    amount: str | None = None,
    settle: str = DEFAULT_SETTLE,
    dry_run: bool = False,
    to_stripe: bool = True,
    on_call: Callable[[str], None] | None = None,
) -> Issued:
    """Issue a credit note on invoice ``ref``: what is left of it (no ``lines``, no ``amount``),
    some ``lines`` (positions) or an ``amount`` (tax included), then put it into Stripe when its
    invoice is there. Bad input raises BadInput (exit 3) before anything is written anywhere.
    ``to_stripe=False``: local only (a preview for the confirmation question)."""
    reason = reason.strip()
    if not reason:
        raise BadInput(
            "a reason is required to credit an invoice", hint="say why, e.g. 'outage 2026-10-14'", field="reason"
        )
    if len(reason) > 500:
        raise BadInput(f"the reason is {len(reason)} characters long; at most 500", field="reason")
    settle_as = _settle(settle)
    invoice, tenant, invoice_lines = get_invoice(app, ref)
    _creditable(invoice)
    minor = None if amount is None else parse_amount(amount, invoice.currency)
    mode = "lines" if lines else ("amount" if minor is not None else "rest")
    show = _shower(invoice.currency)
    facts = _facts(invoice, invoice_lines)
    invoice_id = _id(invoice.id)

    def plan(session: Session) -> tuple[core.Note, core.Credited]:
        before = credited(session, [invoice_id]).get(invoice_id, core.Credited())
        try:
            return core.plan(facts, before, lines=list(lines), amount=minor, fmt=show), before
        except core.CreditError as exc:
            raise BadInput(exc.message, hint=exc.hint) from None

    gw = gateway_or_none(app, dry_run, on_call) if to_stripe and in_stripe(invoice) else None
    if in_stripe(invoice):
        # credit notes of this invoice that an earlier run issued and did not get into Stripe (it
        # stopped): they go first; if one is this very request, re-running it resumes it
        waiting = [
            (r, ls)
            for r, ls in notes_of(app, invoice_id)
            if r.stripe_credit_note_id is None and r.stripe_status != CREDITS_ONLY
        ]
        same = next((p for p in waiting if _same_request(*p, mode, list(lines), minor, reason, settle_as)), None)
        outcomes = _resume_pending(app, gw, invoice, tenant, dry_run, waiting) if gw is not None else {}
        if same is not None:
            row, note_lines = same
            credited_before = sum(n.total_minor for n, _ in notes_of(app, invoice_id) if _id(n.id) < _id(row.id))
            result = Issued(row, note_lines, invoice, tenant, credited_before, dry_run, resumed=True)
            result.stripe = outcomes.get(_id(row.id))
            if result.stripe is None and to_stripe:
                result.pending = _pending_reason(app, invoice)
            return result
    with app.uow(readonly=True) as uow:
        note, earlier = plan(uow.session)
    if gw is not None:  # Stripe credits the cash part only (the rest goes back to purchased credits)
        cash = split_credit(invoice.total_minor, earlier.total, note.total)[0]
        _check_stripe_accepts(gw, invoice, cash, settle_as, show)

    # a dry run takes the same path and skips its writes, so the transaction commits nothing
    with app.uow() as uow:
        session = uow.session
        if not dry_run:
            lock_tenants(uow.connection, [_id(tenant.id)], exclusive=True)
            current = session.get(Invoice, invoice.id)
            assert current is not None
            _creditable(current)
        note, before = plan(session)  # again, under the lock: what another credit took is seen
        credits_back = 0
        number = _number(app, session, dry_run)
        row = CreditNote(
            number=number,
            invoice_id=invoice_id,
            tenant_id=_id(tenant.id),
            currency=invoice.currency,
            subtotal_minor=note.net,
            tax_minor=note.tax,
            total_minor=note.total,
            mode=mode,
            reason=reason,
            settle=settle_as,
            actor=app.actor,
            created_at=app.now(),
        )
        note_lines = [
            CreditNoteLine(  # type: ignore[call-arg]  # credit_note_id: set below, once the note has its id
                position=i,
                kind=x.kind,
                invoice_line_position=x.position,
                description=x.description[:500],
                amount_minor=x.amount,
            )
            for i, x in enumerate(note.lines, start=1)
        ]
        if not dry_run:
            session.add(row)
            session.flush()
            for x in note_lines:
                x.credit_note_id = _id(row.id)
            session.add_all(note_lines)
            # what the invoice's purchased credits paid comes back as credits, cash first (core.invoice_credits)
            _, back = split_credit(invoice.total_minor, before.total, note.total)
            if back > 0:
                returned = return_credits(
                    uow,
                    invoice,
                    source=f"credit_note:{number}",
                    at=app.now(),
                    actor=app.actor,
                    amount=from_minor(back, invoice.currency),
                )
                credits_back = to_minor(sum((r.amount for r in returned), Decimal(0)), invoice.currency)
            audit(
                session,
                app,
                "invoice.credit",
                "credit_note",
                number,
                reason=reason,
                invoice=invoice.number,
                tenant=tenant.key,
                total_minor=note.total,
                tax_minor=note.tax,
                currency=invoice.currency,
                mode=row.mode,
                lines=[x.position for x in note.lines if x.kind == "line"],
                settle=settle_as,
                **({"credits_returned_minor": credits_back} if credits_back else {}),
            )
        elif dry_run:
            credits_back = split_credit(invoice.total_minor, before.total, note.total)[1]
    result = Issued(row, note_lines, invoice, tenant, before.total, dry_run, credits_returned_minor=credits_back)
    if not to_stripe:
        return result
    if gw is None:
        result.pending = _pending_reason(app, invoice)
        return result
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import StripeStore

    try:
        result.stripe = push_credit_note(app, gw, row, note_lines, invoice, tenant, StripeStore(app, dry_run))
    except StripeFailure as exc:
        result.pending = f"Stripe refused or failed it ({exc}); `billctl stripe push` retries it"
    return result


def _resume_pending(
    app: App,
    gw: Any,
    invoice: Invoice,
    tenant: Tenant,
    dry_run: bool,
    waiting: list[tuple[CreditNote, list[CreditNoteLine]]],
) -> dict[int, Any]:
    """Push credit notes an earlier run left out of Stripe; their outcomes by credit note id."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import StripeStore

    done = {}
    for row, note_lines in waiting:
        try:
            done[_id(row.id)] = push_credit_note(app, gw, row, note_lines, invoice, tenant, StripeStore(app, dry_run))
        except StripeFailure as exc:
            raise Conflict(
                f"credit note {row.number} on {invoice.number}, issued earlier, is not in Stripe yet and could not "
                f"be put there now ({exc})",
                hint="fix that first (see `billctl stripe push`); a new credit note would come after it",
            ) from None
    return done


def _same_request(
    row: CreditNote,
    lines: list[CreditNoteLine],
    mode: str,
    positions: list[int],
    amount: int | None,
    reason: str,
    settle: str,
) -> bool:
    if (row.mode, row.reason, row.settle) != (mode, reason, settle):
        return False
    if mode == "lines":
        return sorted(_id(x.invoice_line_position) for x in lines if x.kind == "line") == sorted(positions)
    return mode == "rest" or row.total_minor == amount


def _shower(currency: str) -> Callable[[int], str]:
    return lambda minor: f"{format_amount(from_minor(minor, currency), currency)} {currency}"


def _number(app: App, session: Session, dry_run: bool) -> str:
    seq = reserve_sequence(session, "credit_note", 1, dry_run=dry_run)
    period = Period(app.now().year, app.now().month)
    return app.config.billing.credit_note_number_pattern.format(
        period=str(period), year=period.year, month=f"{period.month:02d}", seq=seq
    )


def _pending_reason(app: App, invoice: Invoice) -> str:
    if not invoice.stripe_invoice_id:
        return f"{invoice.number} is not in Stripe yet: `billctl stripe push` sends the invoice, then this credit note"
    if not in_stripe(invoice):
        return f"{invoice.number} is not final in Stripe yet: `billctl stripe push` completes it, then sends this note"
    return "no Stripe key configured: `billctl stripe push` sends it once one is"


def _check_stripe_accepts(gw: Any, invoice: Invoice, total: int, settle: str, show: Callable[[int], str]) -> None:
    """Refuse up front (exit 3, nothing written) what Stripe would refuse after the local note exists."""
    from billctl.services.stripe_sync import local_minor
    from billctl.stripe import credit_notes as cn

    remote = gw.retrieve_invoice(invoice.stripe_invoice_id)
    if remote.get("status") not in ("open", "paid", "uncollectible"):
        raise BadInput(
            f"{invoice.number} is {remote.get('status')} in Stripe ({remote['id']}), not finalized here",
            hint="run `billctl stripe reconcile` and correct that first",
        )

    def read(name: str) -> int:  # a Stripe amount of the invoice, in billctl's minor units
        return local_minor(remote.get(name) or 0, invoice.currency) or 0

    _, settled = cn.settlement(total, read("amount_remaining"), settle)
    refund = settled.get("refund_amount", 0)
    refundable = read("amount_paid") - read("amount_paid_off_stripe")
    if refund > refundable:
        raise BadInput(
            f"{ref('settle')} refund: {show(refund)} would be refunded but Stripe collected only "
            f"{show(max(refundable, 0))} of {invoice.number} itself",
            hint=f"use {ref('settle')} balance (credit the customer's balance) or {ref('settle')} out-of-band",
            field="settle",
        )
