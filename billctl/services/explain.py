"""Explain one invoice: its stored lines traced to their inputs, and a check that those inputs,
priced again by the same pure rating code, give the same lines and the stored fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session

from billctl.core.explain import Activity, ExplainedLine, StoredLine, check_totals, explain_lines
from billctl.core.money import from_minor
from billctl.core.types import Adjustment
from billctl.db.models import Invoice, InvoiceLine, Tenant, UsageBucket
from billctl.services import invoices as inv_svc
from billctl.services.context import App


@dataclass
class Explanation:
    invoice: Invoice
    tenant: Tenant
    lines: list[ExplainedLine]
    fingerprint_matches: bool
    repriced_matches: bool
    problems: list[str] = field(default_factory=list)


def stored_lines(rows: list[InvoiceLine], currency: str) -> list[StoredLine]:
    return [
        StoredLine(
            position=row.position,
            kind=row.kind,
            description=row.description,
            quantity=Decimal(row.quantity),
            unit_price=None if row.unit_price is None else Decimal(row.unit_price),
            amount=from_minor(row.amount_minor, currency),
            unrounded=Decimal(row.unrounded),
            detail=row.detail or {},
        )
        for row in rows
    ]


def stored_adjustments(lines: list[StoredLine]) -> list[Adjustment]:
    """The adjustment lines an invoice carried, as rating inputs (settled history, reused as is)."""
    return [
        Adjustment(
            for_period=str(x.detail.get("for_period")),
            amount=x.amount,
            description=x.description,
            detail={k: v for k, v in x.detail.items() if k != "for_period"},
        )
        for x in lines
        if x.kind == "adjustment"
    ]


def activity(session: Session, tenant_id: int, inputs: dict) -> list[dict[str, Activity]]:
    """Per input segment, endpoint → the buckets stored now (units, events, count, first and last)."""
    table = UsageBucket.__table__
    result = []
    for seg in inputs.get("segments", []):
        start, end = datetime.fromisoformat(seg["start"]), datetime.fromisoformat(seg["end"])
        rows = session.connection().execute(
            sa.select(
                table.c.endpoint,
                sa.func.sum(table.c.units),
                sa.func.sum(table.c.events),
                sa.func.count(),
                sa.func.min(table.c.bucket_start),
                sa.func.max(table.c.bucket_start),
            )
            .where(
                table.c.tenant_id == tenant_id,
                table.c.bucket_start >= int(start.timestamp()),
                table.c.bucket_start < int(end.timestamp()),
            )
            .group_by(table.c.endpoint)
        )
        result.append(
            {
                endpoint: Activity(int(units), int(events), int(count), int(first), int(last))
                for endpoint, units, events, count, first, last in rows
            }
        )
    return result


def explain(app: App, ref: str) -> Explanation:
    invoice, tenant, rows = inv_svc.get_invoice(app, ref)
    currency = invoice.currency
    lines = stored_lines(rows, currency)
    with Session(app.engine) as session:
        now = activity(session, tenant.id, invoice.inputs)
    explained = explain_lines(invoice.inputs, lines, currency, now)
    fingerprint_matches = inv_svc.fingerprint(invoice.inputs) == invoice.fingerprint
    problems = check_totals(
        lines,
        from_minor(invoice.subtotal_minor, currency),
        from_minor(invoice.tax_minor, currency),
        from_minor(invoice.total_minor, currency),
        currency,
    )
    try:
        draft = inv_svc._rate_inputs(invoice.inputs, stored_adjustments(lines))
        repriced = [(x.kind, x.amount) for x in draft.lines]
        repriced_matches = repriced == [(x.kind, x.amount) for x in lines]
        if not repriced_matches:
            problems.append("pricing the stored inputs again gives different lines")
    except Exception as exc:  # noqa: BLE001 - an old or damaged inputs document: say so, still explain
        repriced_matches = False
        problems.append(f"the stored inputs cannot be priced again: {exc}")
    if not fingerprint_matches:
        problems.append("the stored inputs do not match the stored fingerprint")
    return Explanation(invoice, tenant, explained, fingerprint_matches, repriced_matches, problems)
