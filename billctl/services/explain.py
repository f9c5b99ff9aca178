"""Explain one invoice: its stored lines traced to their inputs, and a check that those inputs,
priced again by the same pure rating code (and its prepaid credits drawn again from the stored
``inputs["credits"]``), give the same lines and the stored fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from billctl.core.explain import Activity, ExplainedLine, StoredLine, check_totals, explain_lines
from billctl.core.invoice import InputSegment, InvoiceInputs, fingerprint, price_inputs
from billctl.core.money import from_minor
from billctl.core.types import Adjustment
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.db.repositories import invoices as repo
from billctl.services.context import App
from billctl.services.invoices import get_invoice


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


def activity(conn: Connection, tenant_id: int, inputs: Mapping[str, Any]) -> list[dict[str, Activity]]:
    """Per input segment, endpoint → the buckets stored now (units, events, count, first and last)."""
    result = []
    for doc in inputs.get("segments", []):
        seg = InputSegment.from_json(doc)
        rows = repo.activity(conn, tenant_id, seg.start, seg.end)
        result.append(
            {
                endpoint: Activity(int(units), int(events), int(count), int(first), int(last))
                for endpoint, units, events, count, first, last in rows
            }
        )
    return result


def explain(app: App, ref: str) -> Explanation:
    invoice, tenant, rows = get_invoice(app, ref)
    assert tenant.id is not None
    currency = invoice.currency
    lines = stored_lines(rows, currency)
    with app.uow() as uow:
        now = activity(uow.connection, tenant.id, invoice.inputs)
    explained = explain_lines(invoice.inputs, lines, currency, now)
    fingerprint_matches = fingerprint(invoice.inputs) == invoice.fingerprint
    problems = check_totals(
        lines,
        from_minor(invoice.subtotal_minor, currency),
        from_minor(invoice.tax_minor, currency),
        from_minor(invoice.total_minor, currency),
        currency,
    )
    try:
        # its stored credits drawn again from what each grant had then (not today's ledger)
        draft = price_inputs(InvoiceInputs.from_json(invoice.inputs), stored_adjustments(lines))
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
