"""Storing finalized invoices: numbers reserved at once, invoices, lines and audit records in bulk."""

from __future__ import annotations

from sqlmodel import Session

from billctl.core.invoice import jsonable
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import to_minor
from billctl.core.periods import Period
from billctl.db.models import Invoice
from billctl.db.repositories import invoices as repo
from billctl.db.uow import UnitOfWork
from billctl.services.context import App, audit
from billctl.services.credits import record_draws
from billctl.services.invoices.pricing import Priced


def reserve_sequence(session: Session, name: str, count: int, *, dry_run: bool) -> int:
    """The first of ``count`` consecutive values of the counter ``name``, in the caller's
    transaction: a rolled-back transaction gives its values back, so numbering has no gaps."""
    return repo.reserve_sequence(session.connection(), name, count, dry_run=dry_run)


def reserve_numbers(session: Session, app: App, period: Period, count: int, *, dry_run: bool) -> list[str]:
    """``count`` consecutive invoice numbers from the global counter."""
    first = reserve_sequence(session, "invoice", count, dry_run=dry_run)
    pattern = app.config.billing.invoice_number_pattern
    return [
        pattern.format(period=str(period), year=period.year, month=f"{period.month:02d}", seq=first + i)
        for i in range(count)
    ]


def write_invoices(app: App, uow: UnitOfWork, batch: list[Priced], *, dry_run: bool) -> list[Invoice]:
    """Invoices, their lines and audit records for priced drafts, in a few statements for the whole
    batch (numbers reserved at once, rows inserted in bulk), and the prepaid credits each drew, in
    the same transaction (a finalize killed before its commit leaves neither invoice nor draws; a
    re-run writes both, once). A dry run builds them and writes nothing."""
    session = uow.session
    if not batch:
        return []
    numbers = reserve_numbers(session, app, batch[0].period, len(batch), dry_run=dry_run)
    invoices = []
    for priced, number in zip(batch, numbers, strict=True):
        draft, tenant, period = priced.draft, priced.tenant, priced.period
        assert draft is not None and tenant.id is not None
        start, end = period.bounds(tenant.timezone)
        currency = draft.currency
        invoices.append(
            Invoice(
                number=number,
                tenant_id=tenant.id,
                period=str(period),
                period_start=start,
                period_end=end,
                currency=currency,
                subtotal_minor=to_minor(draft.subtotal, currency),
                tax_minor=to_minor(draft.tax, currency),
                total_minor=to_minor(draft.total, currency),
                status=InvoiceStatus.FINALIZED,
                fingerprint=priced.fingerprint,
                inputs=priced.inputs,
                actor=app.actor,
            )
        )
    if dry_run:
        return invoices
    session.add_all(invoices)
    session.flush()  # one batched INSERT ... RETURNING id
    lines = []
    plan_ids: set[int] = set()
    for priced, invoice in zip(batch, invoices, strict=True):
        assert priced.draft is not None
        currency = invoice.currency
        for position, line in enumerate(priced.draft.lines, start=1):
            lines.append(
                {
                    "invoice_id": invoice.id,
                    "position": position,
                    "kind": line.kind,
                    "description": line.description,
                    "quantity": str(line.quantity),
                    "unit_price": None if line.unit_price is None else str(line.unit_price),
                    "amount_minor": to_minor(line.amount, currency),
                    "unrounded": str(line.unrounded),
                    "for_period": line.detail.get("for_period") if line.kind == "adjustment" else None,
                    "detail": jsonable(line.detail),
                }
            )
        plan_ids.update(seg["plan"]["id"] for seg in priced.inputs["segments"])
        audit(
            session,
            app,
            "invoice.finalize",
            "invoice",
            invoice.number,
            reason=f"--allow-open-period: {priced.open_period}" if priced.open_period else "",
            tenant=priced.tenant.key,
            period=str(priced.period),
            total_minor=invoice.total_minor,
            currency=currency,
            fingerprint=priced.fingerprint,
            **({"credits_minor": to_minor(priced.credits.credits, currency)} if priced.credits else {}),
        )
        if priced.credits is not None:
            record_draws(uow, invoice, priced.credits, at=app.now(), actor=app.actor)
    repo.insert_lines(session, lines)
    repo.mark_plans_used(session, plan_ids)
    return invoices
