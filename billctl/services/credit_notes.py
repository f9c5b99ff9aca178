"""Corrections of finalized invoices: credit notes (local, numbered, immutable; then in Stripe) and
the Stripe side of voiding (DESIGN.md invariants 9 and 11).

A credit note is planned by the pure ``billctl.core.credit`` from the invoice and its earlier
credit notes, under the tenant's lock (two credit notes at once cannot both take what is left),
and written with its number, lines and audit record in one transaction. Then, if its invoice is
final in Stripe and a key is configured, it becomes a Stripe credit note on that invoice; if not,
``stripe push`` takes it later (after the invoice). The Stripe write is idempotent as push is: an
idempotency key from the local number, the step and a digest of the parameters; the moment it is
about to create, that is recorded, so a re-run first looks the credit note up by metadata among
the invoice's credit notes; the Stripe id is stored as soon as Stripe returns it.

Voiding an invoice that is in Stripe asks Stripe first (the local payment status may be stale):
an invoice Stripe reports paid or partly paid is refused (a credit note is the way); an open one
is voided in Stripe, then locally, so a payment cannot slip in between.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from billctl.core import credit as core
from billctl.core.money import (
    MoneyError,
    billing_rule,
    billing_unit,
    fits_minor_unit,
    format_amount,
    from_minor,
    parse_decimal,
    to_minor,
    to_stripe_amount,
)
from billctl.core.periods import Period
from billctl.db.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, Tenant
from billctl.errors import BadInput, ConfigError, Conflict
from billctl.services.context import App, audit

SETTLE_CHOICES = ("refund", "balance", "out-of-band")
DEFAULT_SETTLE = "balance"
# Stripe invoice states in which a credit note can go to Stripe
FINAL_IN_STRIPE = ("open", "paid", "payment_failed", "uncollectible")


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

    @property
    def left_minor(self) -> int:
        return self.invoice.total_minor - self.credited_before - self.note.total_minor


def _facts(invoice: Invoice, lines: Iterable[InvoiceLine]) -> core.Invoice:
    rows = tuple(core.InvoiceLine(x.position, x.kind, x.description, x.amount_minor) for x in lines)
    step = to_minor(billing_unit(invoice.currency), invoice.currency)  # KWD 10, ISK 100, USD 1
    return core.Invoice(invoice.number, invoice.subtotal_minor, invoice.tax_minor, rows, step)


def notes_by_invoice(
    session: Session, invoice_ids: Sequence[int]
) -> dict[int, list[tuple[CreditNote, list[CreditNoteLine]]]]:
    notes: dict[int, list[tuple[CreditNote, list[CreditNoteLine]]]] = defaultdict(list)
    if not invoice_ids:
        return notes
    rows = list(session.exec(select(CreditNote).where(CreditNote.invoice_id.in_(invoice_ids)).order_by(CreditNote.id)))
    by_note: dict[int, list[CreditNoteLine]] = defaultdict(list)
    if rows:
        for line in session.exec(
            select(CreditNoteLine)
            .where(CreditNoteLine.credit_note_id.in_([n.id for n in rows]))
            .order_by(CreditNoteLine.credit_note_id, CreditNoteLine.position)
        ):
            by_note[line.credit_note_id].append(line)
    for note in rows:
        notes[note.invoice_id].append((note, by_note[note.id]))
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


def credited_totals(app: App, invoice_ids: Sequence[int]) -> dict[int, int]:
    """Total credited per invoice (minor units, tax included); invoices without credit notes left out."""
    if not invoice_ids:
        return {}
    with Session(app.engine) as session:
        rows = session.exec(
            select(CreditNote.invoice_id, sa.func.sum(CreditNote.total_minor))
            .where(CreditNote.invoice_id.in_(invoice_ids))
            .group_by(CreditNote.invoice_id)
        )
        return {invoice_id: int(total) for invoice_id, total in rows}


def notes_of(app: App, invoice_id: int) -> list[tuple[CreditNote, list[CreditNoteLine]]]:
    with Session(app.engine) as session:
        return notes_by_invoice(session, [invoice_id]).get(invoice_id, [])


def parse_amount(text: str, currency: str) -> int:
    """--amount in minor units; finer than Stripe charges in ``currency`` (its billing unit: KWD 0.01,
    ISK and JPY 1) is refused, naming the rule."""
    try:
        amount = parse_decimal(text, field="--amount")
    except MoneyError as exc:
        raise BadInput(f"--amount {text!r}: {exc}", hint=f"write it in {currency}, e.g. 12") from None
    if not fits_minor_unit(amount, currency):
        unit = billing_unit(currency)
        raise BadInput(
            f"--amount {text!r} is finer than {currency} can be credited ({billing_rule(currency)})",
            hint=f"give a multiple of {unit} {currency}",
        )
    return to_minor(amount, currency)


def _settle(value: str) -> str:
    if value not in SETTLE_CHOICES:
        raise BadInput(f"--settle {value!r} is not one of {', '.join(SETTLE_CHOICES)}")
    return value.replace("-", "_")


def _creditable(invoice: Invoice) -> None:
    """A credit note corrects a finalized invoice, and only one."""
    fix = f"see `billctl invoices show {invoice.number}`"
    if invoice.status == "void":
        raise BadInput(
            f"{invoice.number} is void: it bills nothing, so there is nothing to credit",
            hint="credit the invoice that replaced it (`billctl invoices list --period " + invoice.period + "`)",
        )
    if invoice.status == "held":
        raise BadInput(
            f"{invoice.number} is held ({invoice.hold_reason or 'by run-monthly'}): not sent to anyone yet",
            hint="release it first, or void it and finalize the period again",
        )
    if invoice.status != "finalized":
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
    from billctl.services.invoices import get_invoice
    from billctl.services.usage import lock_tenants

    reason = reason.strip()
    if not reason:
        raise BadInput("--reason is required to credit an invoice", hint="say why, e.g. --reason 'outage 2026-10-14'")
    if len(reason) > 500:
        raise BadInput(f"--reason is {len(reason)} characters long; at most 500")
    settle_as = _settle(settle)
    invoice, tenant, invoice_lines = get_invoice(app, ref)
    _creditable(invoice)
    minor = None if amount is None else parse_amount(amount, invoice.currency)
    mode = "lines" if lines else ("amount" if minor is not None else "rest")
    show = _shower(invoice.currency)
    facts = _facts(invoice, invoice_lines)

    def plan(session: Session) -> tuple[core.Note, core.Credited]:
        before = credited(session, [invoice.id]).get(invoice.id, core.Credited())
        try:
            return core.plan(facts, before, lines=list(lines), amount=minor, fmt=show), before
        except core.CreditError as exc:
            raise BadInput(exc.message, hint=exc.hint) from None

    gw = _gateway(app, dry_run, on_call) if to_stripe and _in_stripe(invoice) else None
    if _in_stripe(invoice):
        # credit notes of this invoice that an earlier run issued and did not get into Stripe (it
        # stopped): they go first; if one is this very request, re-running it resumes it
        waiting = [(r, ls) for r, ls in notes_of(app, invoice.id) if r.stripe_credit_note_id is None]
        same = next((p for p in waiting if _same_request(*p, mode, list(lines), minor, reason, settle_as)), None)
        outcomes = _resume_pending(app, gw, invoice, tenant, dry_run, waiting) if gw is not None else {}
        if same is not None:
            row, note_lines = same
            credited_before = sum(n.total_minor for n, _ in notes_of(app, invoice.id) if n.id < row.id)
            result = Issued(row, note_lines, invoice, tenant, credited_before, dry_run, resumed=True)
            result.stripe = outcomes.get(row.id)
            if result.stripe is None and to_stripe:
                result.pending = _pending_reason(app, invoice)
            return result
    with Session(app.engine) as session:
        note, _ = plan(session)
    if gw is not None:
        _check_stripe_accepts(gw, invoice, note.total, settle_as, show)

    with Session(app.engine, expire_on_commit=False) as session, session.begin():
        if not dry_run:
            lock_tenants(session.connection(), [tenant.id], exclusive=True)
            current = session.get(Invoice, invoice.id)
            _creditable(current)
        note, before = plan(session)  # again, under the lock: what another credit took is seen
        number = _number(app, session, dry_run)
        row = CreditNote(
            number=number,
            invoice_id=invoice.id,
            tenant_id=tenant.id,
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
            CreditNoteLine(
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
                x.credit_note_id = row.id
            session.add_all(note_lines)
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
            )
    result = Issued(row, note_lines, invoice, tenant, before.total, dry_run)
    if not to_stripe:
        return result
    if gw is None:
        result.pending = _pending_reason(app, invoice)
        return result
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import _Store

    try:
        result.stripe = push_credit_note(app, gw, row, note_lines, invoice, tenant, _Store(app, dry_run))
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
    from billctl.services.stripe_sync import _Store

    done = {}
    for row, note_lines in waiting:
        try:
            done[row.id] = push_credit_note(app, gw, row, note_lines, invoice, tenant, _Store(app, dry_run))
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
        return sorted(x.invoice_line_position for x in lines if x.kind == "line") == sorted(positions)
    return mode == "rest" or row.total_minor == amount


def _shower(currency: str) -> Callable[[int], str]:
    return lambda minor: f"{format_amount(from_minor(minor, currency), currency)} {currency}"


def _number(app: App, session: Session, dry_run: bool) -> str:
    from billctl.services.invoices import reserve_sequence

    seq = reserve_sequence(session, "credit_note", 1, dry_run=dry_run)
    period = Period(app.now().year, app.now().month)
    return app.config["billing.credit_note_number_pattern"].format(
        period=str(period), year=period.year, month=f"{period.month:02d}", seq=seq
    )


def _in_stripe(invoice: Invoice) -> bool:
    return bool(invoice.stripe_invoice_id) and invoice.stripe_status in FINAL_IN_STRIPE


def _gateway(app: App, dry_run: bool, on_call: Callable[[str], None] | None):  # type: ignore[no-untyped-def]
    """The Stripe gateway, or None when no key is configured (a bad key still raises)."""
    from billctl.errors import NoStripeKey
    from billctl.services.stripe_sync import gateway

    try:
        return gateway(app, dry_run=dry_run, on_call=on_call)
    except NoStripeKey:
        return None


def _pending_reason(app: App, invoice: Invoice) -> str:
    if not invoice.stripe_invoice_id:
        return f"{invoice.number} is not in Stripe yet: `billctl stripe push` sends the invoice, then this credit note"
    if not _in_stripe(invoice):
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
            f"--settle refund: {show(refund)} would be refunded but Stripe collected only {show(max(refundable, 0))} "
            f"of {invoice.number} itself",
            hint="use --settle balance (credit the customer's balance) or --settle out-of-band",
        )


# ---------------------------------------------------------------- Stripe


def _store_note(store: Any, note: CreditNote, **values: Any) -> None:
    with store.tx() as s:
        if s is not None:
            s.execute(sa.update(CreditNote).where(CreditNote.id == note.id).values(**values))


def push_credit_note(
    app: App, gw: Any, note: CreditNote, lines: list[CreditNoteLine], invoice: Invoice, tenant: Tenant, store: Any
) -> Any:
    """Put one local credit note into Stripe as a credit note on its invoice, resuming wherever an
    earlier run stopped; returns a stripe_sync.Outcome."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import Outcome, local_minor
    from billctl.stripe import credit_notes as cn
    from billctl.stripe.mapping import show_amount

    out = Outcome(
        "credit_note", note.number, tenant.key, "pushed", total_minor=note.total_minor, currency=note.currency
    )
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
        ids: dict[int, str] = {}
        if any(x.invoice_line_position is not None for x in lines):
            with Session(app.engine) as session:
                items = {
                    x.position: x.stripe_item_id
                    for x in session.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
                }
            ids = cn.line_ids(gw.list_invoice_lines(invoice.stripe_invoice_id), items, invoice.number)
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
        due = local_minor(stripe_invoice.get("amount_remaining") or 0, note.currency) or 0
        try:
            params = cn.credit_note_params(note_in, invoice.stripe_invoice_id, ids, due)
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
            s.execute(sa.update(CreditNote).where(CreditNote.id == note.id).values(**values))
            audit(s, app, "stripe.credit_note.push", "credit_note", note.number, outcome=out.action, **values)
    out.stripe_id, out.stripe_number, out.status = remote["id"], remote.get("number"), remote.get("status")
    expected = to_stripe_amount(note.total_minor, note.currency, check=False)
    if remote.get("total") is not None and remote["total"] != expected and not gw.dry_run:
        out.note += (
            f"Stripe total {show_amount(remote['total'], note.currency)} differs from "
            f"{show_amount(expected, note.currency)}"
        )
    return out


def pending(app: App, period: Period | None = None, tenant_key: str | None = None) -> list[int]:
    """Ids of credit notes not in Stripe yet whose invoice is final there, oldest first."""
    from billctl.services.invoices import billed_tenants

    with Session(app.engine) as session:
        query = (
            select(CreditNote.id)
            .join(Invoice, Invoice.id == CreditNote.invoice_id)
            .where(
                CreditNote.stripe_credit_note_id.is_(None),
                Invoice.stripe_invoice_id.is_not(None),
                Invoice.stripe_status.in_(FINAL_IN_STRIPE),
            )
        )
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if tenant_key:
            query = query.where(CreditNote.tenant_id == billed_tenants(session, tenant_key)[0].id)
        return list(session.exec(query.order_by(CreditNote.id)))


def push_pending(
    app: App, gw: Any, store: Any, ids: Sequence[int], on_outcome: Callable[[Any], None] | None = None
) -> list[Any]:
    """Push credit notes by id (``pending``); a failure on one is recorded and the others go on."""
    from billctl.errors import StripeFailure
    from billctl.services.stripe_sync import failed_outcome

    outcomes = []
    for note_id in ids:
        with Session(app.engine) as session:
            note = session.get(CreditNote, note_id)
            invoice = session.get(Invoice, note.invoice_id)
            tenant = session.get(Tenant, note.tenant_id)
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


# ---------------------------------------------------------------- void


def check_voidable(session: Session, invoice: Invoice) -> None:
    """What refuses a void whatever Stripe says: state, credit notes, a payment already recorded."""
    if invoice.status == "void":
        raise Conflict(f"invoice {invoice.number} is already void")
    if invoice.status not in ("finalized", "held"):  # a held one (e.g. a stolen key's usage) may be voided
        raise Conflict(f"invoice {invoice.number} is {invoice.status} and cannot be voided here")
    notes = session.exec(select(CreditNote.number).where(CreditNote.invoice_id == invoice.id)).all()
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
    from billctl.services.stripe_sync import _state_values, _Store
    from billctl.stripe import credit_notes as cn
    from billctl.stripe import mapping as m

    gw = _gateway(app, dry_run, on_call)
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
    store = _Store(app, dry_run)
    values = {"stripe_invoice_id": remote["id"], **_state_values(remote)}
    store.invoice(invoice.id, **values)
    if cn.paid_in_stripe(remote):
        raise _paid(invoice.number, remote.get("status"), values["stripe_amount_paid"], invoice.currency)
    if remote.get("status") in ("open", "uncollectible"):
        remote = gw.void_invoice(remote["id"], m.invoice_key(invoice.number, "void"), remote)
        store.invoice(invoice.id, **_state_values(remote))
        return f"voided in Stripe ({remote['id']})"
    return f"{remote.get('status')} in Stripe ({remote['id']})"


def reconcile(app: App, gw: Any, invoices: Sequence[tuple[Invoice, Tenant]], remote_invoices: Iterable[dict]) -> list:
    """Drift between the credit notes of ``invoices`` and the Stripe credit notes of their customers'
    invoices (``remote_invoices``: the Stripe invoices reconcile compared): missing, duplicated,
    another total, voided in Stripe, unknown locally."""
    from billctl.stripe import credit_notes as cn

    by_id = {inv.id: (inv, ten) for inv, ten in invoices}
    with Session(app.engine) as session:
        notes = (
            list(session.exec(select(CreditNote).where(CreditNote.invoice_id.in_(list(by_id))).order_by(CreditNote.id)))
            if by_id
            else []
        )
    local = [
        cn.LocalCreditNote(
            n.number,
            by_id[n.invoice_id][0].number,
            by_id[n.invoice_id][1].key,
            n.currency,
            n.total_minor,
            n.stripe_credit_note_id,
            _in_stripe(by_id[n.invoice_id][0]),
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
    from billctl.services.invoices import billed_tenants, get_invoice

    with Session(app.engine) as session:
        query = (
            select(CreditNote, Invoice, Tenant)
            .join(Invoice, Invoice.id == CreditNote.invoice_id)
            .join(Tenant, Tenant.id == CreditNote.tenant_id)
            .order_by(CreditNote.id)
        )
        if tenant_key:
            query = query.where(CreditNote.tenant_id == billed_tenants(session, tenant_key)[0].id)
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if invoice_ref:
            query = query.where(CreditNote.invoice_id == get_invoice(app, invoice_ref)[0].id)
        rows = [NoteRow(n, i, t) for n, i, t in session.exec(query)]
        lines = notes_by_invoice(session, sorted({r.invoice.id for r in rows}))
    by_id = {n.id: ls for notes in lines.values() for n, ls in notes}
    for row in rows:
        row.lines = by_id.get(row.note.id, [])
    return rows
