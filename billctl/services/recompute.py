"""Price a finalized period again from today's data and compare it with what was invoiced.

Read-only: one read transaction, nothing written (like preview, DESIGN.md invariant 6). The same
code prices it as finalize did (``invoices.price_period``), with the invoice's own adjustment lines
reused as settled history and its prepaid credits drawn again from what it stored (each grant as it
was then, not today's ledger), so unchanged inputs give the same lines and the same fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from billctl.core import compare
from billctl.core.invoice import jsonable
from billctl.core.money import format_amount, from_minor, to_minor
from billctl.core.periods import Period
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.db.repositories import invoices as repo
from billctl.services.context import App
from billctl.services.explain import stored_adjustments, stored_lines
from billctl.services.invoices import (
    Priced,
    billed_tenants,
    load_context,
    open_periods,
    plan_segments,
    price_period,
    stored_credits,
    tenant_id_of,
)
from billctl.services.usage import usage_totals


@dataclass
class Recomputed:
    invoice: Invoice
    tenant: Tenant
    fingerprint_now: str
    subtotal_now_minor: int
    tax_now_minor: int
    total_now_minor: int
    diffs: list[compare.LineDiff] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    proposal: dict[str, str] = field(default_factory=dict)

    @property
    def same_inputs(self) -> bool:
        return self.fingerprint_now == self.invoice.fingerprint

    @property
    def changed(self) -> bool:
        return not self.same_inputs or any(d.status != "same" for d in self.diffs)

    @property
    def delta_total_minor(self) -> int:
        return self.total_now_minor - self.invoice.total_minor

    @property
    def delta_subtotal_minor(self) -> int:
        return self.subtotal_now_minor - self.invoice.subtotal_minor

    @property
    def delta_tax_minor(self) -> int:
        return self.tax_now_minor - self.invoice.tax_minor


def _rows_then(lines: list[InvoiceLine]) -> list[compare.Row]:
    from decimal import Decimal

    return compare.keyed(
        [
            (compare.line_key(x.kind, x.detail or {}), x.kind, x.description, Decimal(x.quantity), x.amount_minor)
            for x in lines
        ]
    )


def recompute(
    app: App, period: Period, tenant_key: str | None = None, *, progress: Callable[[int], None] | None = None
) -> Iterator[Recomputed]:
    """Each live invoice of ``period`` (or one tenant's), priced again now and compared."""
    with app.uow(readonly=True) as uow:
        session, conn = uow.session, uow.connection
        pairs = repo.with_tenants(
            session,
            tenant_id=tenant_id_of(session, tenant_key) if tenant_key else None,
            period=str(period),
            live_only=True,
        )
        if progress:
            progress(len(pairs))
        ids = [t.id for _, t in pairs if t.id is not None]
        ctx = load_context(session, ids, app.config.billing.adjustment_lookback_months)
        for invoice, tenant in pairs:
            assert tenant.id is not None
            lines = repo.lines_of(session, invoice.id)
            adjustments = stored_adjustments(stored_lines(lines, invoice.currency))

            def usage_of(s: datetime, e: datetime, tid: int = tenant.id) -> dict[str, int]:
                return usage_totals(conn, tid, s, e)

            priced = price_period(
                conn,
                ctx,
                tenant,
                period,
                usage_of,
                credits=stored_credits(invoice.inputs),  # the credits it drew then, not today's ledger
                adjustments=(adjustments, list(invoice.inputs.get("adjustments", []))),
            )
            yield _compare(invoice, tenant, lines, priced)


def _compare(invoice: Invoice, tenant: Tenant, lines: list[InvoiceLine], priced: Priced) -> Recomputed:
    currency = invoice.currency
    if priced.draft is None:  # no plan any more: everything would go
        result = Recomputed(invoice, tenant, "", 0, 0, 0)
        result.diffs = compare.diff_lines(_rows_then(lines), [])
        result.reasons = [f"not billable now: {priced.skipped}"]
    else:
        draft = priced.draft
        rows_now = compare.keyed(
            [
                (
                    compare.line_key(x.kind, cast(dict[str, Any], jsonable(dict(x.detail)))),
                    x.kind,
                    x.description,
                    x.quantity,
                    to_minor(x.amount, currency),
                )
                for x in draft.lines
            ]
        )
        result = Recomputed(
            invoice,
            tenant,
            priced.fingerprint,
            to_minor(draft.subtotal, currency),
            to_minor(draft.tax, currency),
            to_minor(draft.total, currency),
            diffs=compare.diff_lines(_rows_then(lines), rows_now),
            reasons=compare.input_changes(invoice.inputs, priced.inputs),
        )
    money = format_amount(from_minor(abs(result.delta_subtotal_minor), currency), currency) + f" {currency}"
    result.proposal = compare.propose(
        invoice.number, result.delta_subtotal_minor, result.delta_total_minor, result.reasons, money
    )
    return result


def not_invoiced(app: App, period: Period, tenant_key: str | None = None) -> list[str]:
    """Active tenants that have a plan for ``period`` today but no live invoice for it (a plan
    assigned after the period was finalized, say): ``invoices finalize`` would bill them. A tenant
    whose period is not over yet is not missing: finalize refuses it (the same rule, invariant 12)."""
    with app.uow(readonly=True) as uow:
        session = uow.session
        tenants = billed_tenants(session, tenant_key)
        ids = [t.id for t in tenants if t.id is not None]
        live = repo.live_invoices(session, str(period), ids)
        ctx = load_context(session, ids, app.config.billing.adjustment_lookback_months)
    not_over = open_periods(period, tenants, app.now(), allow=True)
    missing = []
    for tenant in tenants:
        if tenant.id in live or tenant.status != "active" or tenant.id in not_over:
            continue
        start, end = period.bounds(tenant.timezone)
        if plan_segments(ctx, tenant, start, end):
            missing.append(tenant.key)
    return missing
