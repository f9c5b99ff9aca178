"""billctl invoices void|credit|credit-notes: corrections, which add and never erase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, YesOpt, confirm, lazy_module, state
from billctl.cli.output import Out
from billctl.core.bounds import REASON
from billctl.core.money import format_amount, from_minor
from billctl.errors import BadInput, PartialFailure

if TYPE_CHECKING:
    from billctl.services import credit_notes as notes_svc
    from billctl.services import invoices as svc
else:
    svc = lazy_module("billctl.services.invoices")
    notes_svc = lazy_module("billctl.services.credit_notes")


def void(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Invoice number or id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
) -> None:
    """Void a finalized invoice nobody has paid (recorded with the reason); the period can then be
    finalized again. An invoice pushed to Stripe is checked there first: one Stripe reports paid or
    partly paid is refused (exit 9; correct it with `invoices credit`), an open one is voided in
    Stripe at once, a draft left by an interrupted push is deleted by the next `stripe push`;
    without a Stripe key billctl cannot know, and refuses (exit 4). An invoice with credit notes
    cannot be voided (exit 9): credit what is left instead."""
    from billctl.services.context import check_text

    st = state(ctx)
    check_text(reason, "--reason", REASON)
    if not reason.strip():  # the service names the field; the command names its flag
        raise BadInput("--reason is required to void an invoice", field="reason")
    if not dry_run:
        confirm(st.out, f"Void invoice {invoice}?", yes)
    row, in_stripe = svc.void_invoice(st.app, invoice, reason, dry_run=dry_run)
    if dry_run:
        st.out.success(f"dry run: invoice {row.number} would be void ({in_stripe}); nothing written")
    else:
        st.out.success(f"invoice {row.number} is void ({in_stripe}): {row.void_reason}")


def _amount(minor: int, currency: str) -> str:
    return f"{format_amount(from_minor(minor, currency), currency)} {currency}"


def note_doc(note, invoice, tenant, lines) -> dict:
    c = note.currency
    return {
        "number": note.number,
        "invoice": invoice.number,
        "tenant": tenant.key,
        "period": invoice.period,
        "created_at": note.created_at.isoformat() if note.created_at else None,
        "created_by": note.actor,
        "reason": note.reason,
        "mode": note.mode,
        "settle": note.settle.replace("_", "-"),
        "lines": [
            {
                "position": x.position,
                "kind": x.kind,
                "invoice_line": x.invoice_line_position,
                "description": x.description,
                "amount": svc.money(x.amount_minor, c),
            }
            for x in lines
        ],
        "subtotal": svc.money(note.subtotal_minor, c),
        "tax": svc.money(note.tax_minor, c),
        "total": svc.money(note.total_minor, c),
        "stripe": {
            "credit_note": note.stripe_credit_note_id,
            "number": note.stripe_number,
            "status": note.stripe_status,
            "pre_payment": None
            if note.stripe_pre_payment_minor is None
            else svc.money(note.stripe_pre_payment_minor, c),
            "post_payment": None
            if note.stripe_post_payment_minor is None
            else svc.money(note.stripe_post_payment_minor, c),
        },
    }


def _render_note(out: Out, result: notes_svc.Issued) -> None:
    note, c = result.note, result.note.currency
    title = f"{note.number}{' (dry run)' if result.dry_run else ''} · credits {result.invoice.number} · {c}"
    kinds = {"line": "invoice line", "amount": "amount", "tax": "tax"}
    out.table(
        ["kind", "invoice line", "description", f"amount {c}"],
        [
            (
                kinds[x.kind],
                x.invoice_line_position or "",
                x.description,
                format_amount(from_minor(x.amount_minor, c), c),
            )
            for x in result.lines
        ],
        title=title,
        right=[f"amount {c}"],
        footer=[
            ("", "", "credited before tax", format_amount(from_minor(note.subtotal_minor, c), c)),
            ("", "", "tax", format_amount(from_minor(note.tax_minor, c), c)),
            ("", "", "credit note total", format_amount(from_minor(note.total_minor, c), c)),
            ("", "", "left to credit on the invoice", format_amount(from_minor(result.left_minor, c), c)),
        ],
    )


def credit(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Invoice number or id.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (on the credit note, in Stripe's memo, in the audit log).")
    ],
    line: Annotated[
        list[int] | None,
        typer.Option(
            "--line", help="Credit this line (position, see `invoices show`), with its share of tax. Repeatable."
        ),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="Credit this amount, tax included, e.g. 12.50 (no particular line); no finer than Stripe "
            "charges in the currency (KWD 0.01, ISK and JPY 1).",
        ),
    ] = None,
    settle: Annotated[
        str,
        typer.Option(
            "--settle",
            help="What Stripe does with the part of the credit the customer already paid: refund (money back to "
            "the card), balance (credit to the customer's Stripe balance, taken off the next invoice), or "
            "out-of-band (recorded only; you pay it back outside Stripe). Default balance: no money leaves, it "
            "can be undone, and the customer still gets it. On an unpaid invoice the credit just reduces what "
            "is due.",
        ),
    ] = "balance",  # credit_notes.DEFAULT_SETTLE (a test checks they agree)
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
) -> None:
    """Issue a numbered, immutable credit note on a finalized invoice: what is left of it (default),
    some --line(s), or an --amount. In Stripe it becomes a credit note on that invoice (now, if the
    invoice is there and a key is set; else with the next `stripe push`).

    Tax: credited lines take their share of the invoice's tax (rounded once, half-up, to the
    currency's billing unit, so crediting in pieces credits the same tax as crediting at once); an
    --amount is tax included, split the same way; the whole invoice credits its total. Never more
    than what is left to credit.

    How to correct an invoice, by state: draft (not finalized): nothing to correct, fix the plan or
    usage and preview again. Finalized, not in Stripe: `invoices void` and finalize again, or credit
    it. Open in Stripe: `invoices void` (voids it in Stripe too) or a credit note (reduces what is
    due). Paid or partly paid: a credit note only; --settle says what Stripe does with it."""
    st = state(ctx)
    out = st.output(output)
    lines = list(line or [])
    if not reason.strip():  # the service names the fields; the command names its flags
        raise BadInput("--reason is required to credit an invoice", hint="say why, e.g. --reason 'outage 2026-10-14'")
    if settle not in notes_svc.SETTLE_CHOICES:
        raise BadInput(f"--settle {settle!r} is not one of {', '.join(notes_svc.SETTLE_CHOICES)}", field="settle")
    if not dry_run:
        preview = notes_svc.issue(
            st.app, invoice, reason=reason, lines=lines, amount=amount, settle=settle, dry_run=True, to_stripe=False
        )
        what = _amount(preview.note.total_minor, preview.note.currency)
        confirm(out, f"Issue a credit note of {what} on {preview.invoice.number}? Credit notes are immutable.", yes)
    result = notes_svc.issue(st.app, invoice, reason=reason, lines=lines, amount=amount, settle=settle, dry_run=dry_run)
    doc = note_doc(result.note, result.invoice, result.tenant, result.lines)
    doc["dry_run"] = dry_run
    doc["left_to_credit"] = svc.money(result.left_minor, result.note.currency)
    doc["credits_returned"] = svc.money(result.credits_returned_minor, result.note.currency)
    stripe = result.stripe
    doc["stripe"]["action"] = stripe.action if stripe else "pending"
    doc["stripe"]["note"] = (stripe.note if stripe else "") or result.pending
    if stripe and stripe.stripe_id:
        doc["stripe"]["credit_note"] = stripe.stripe_id
    if stripe and stripe.status:
        doc["stripe"]["status"] = stripe.status
    if out.fmt == "json":
        out.json(doc)
    elif out.fmt == "csv":
        out.csv(
            ["credit_note", "invoice", "line", "kind", "invoice_line", "description", "amount", "currency"],
            [
                [
                    doc["number"],
                    doc["invoice"],
                    x["position"],
                    x["kind"],
                    x["invoice_line"] or "",
                    x["description"],
                    x["amount"]["decimal"],
                    result.note.currency,
                ]
                for x in doc["lines"]
            ],
        )
    else:
        _render_note(out, result)
    verb = "would issue" if dry_run else "issued"
    if result.resumed:
        verb = "completed (an earlier run issued it and stopped before Stripe had it)"
    out.success(
        f"{verb} {result.note.number}: {_amount(result.note.total_minor, result.note.currency)} credited on "
        f"{result.invoice.number}, reason: {result.note.reason}"
    )
    if stripe is not None and stripe.action != "failed":
        where = f"Stripe credit note {stripe.stripe_id}" + (
            f" ({stripe.stripe_number})" if stripe.stripe_number else ""
        )
        out.info(f"{'would create' if dry_run else 'in Stripe as'} {where}")
    elif result.pending:
        out.warn(f"not in Stripe yet: {result.pending}")
        if result.stripe is None and "refused" in result.pending:
            raise PartialFailure(f"{result.note.number} is issued here; Stripe refused it (see above)")


def credit_notes(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    period: Annotated[str | None, typer.Option("--period", "-p", help="Of invoices of this month, YYYY-MM.")] = None,
    invoice: Annotated[str | None, typer.Option("--invoice", help="Of this invoice.")] = None,
    output: OutputOpt = None,
) -> None:
    """List credit notes (newest last), with the invoice each corrects and where it is in Stripe."""
    st = state(ctx)
    rows = notes_svc.list_notes(st.app, tenant, svc.parse_period(period) if period else None, invoice)
    st.output(output).rows(
        ["number", "invoice", "tenant", "period", "issued", "total", "currency", "settle", "stripe", "reason"],
        [
            (
                r.note.number,
                r.invoice.number,
                r.tenant.key,
                r.invoice.period,
                r.note.created_at.strftime("%Y-%m-%d %H:%M"),
                format_amount(from_minor(r.note.total_minor, r.note.currency), r.note.currency),
                r.note.currency,
                r.note.settle.replace("_", "-"),
                r.note.stripe_credit_note_id
                or r.note.stripe_status  # "credits only": nothing to credit in Stripe
                or ("pending" if r.invoice.stripe_invoice_id else "local only"),
                r.note.reason,
            )
            for r in rows
        ],
        documents=[note_doc(r.note, r.invoice, r.tenant, r.lines) for r in rows],
        right=["total"],
    )
