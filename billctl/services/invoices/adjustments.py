"""Adjustment lines for late usage (DESIGN.md invariants 5 and 11): the database side.

The diff itself is pure (``billctl.core.invoice``: ``billed_for``, ``late_adjustment``,
``rebilled_adjustment``); this module reads what it needs: the live invoices of the periods with
late usage, their lines, and the usage stored now.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from billctl.core.invoice import (
    AdjustmentRecord,
    InvoiceInputs,
    billed_for,
    late_adjustment,
    late_periods,
    rebilled_adjustment,
)
from billctl.core.periods import Period
from billctl.core.types import Adjustment
from billctl.db.models import Tenant
from billctl.db.repositories import invoices as repo
from billctl.services.invoices.pricing import PricingContext
from billctl.services.usage import usage_totals


def adjustments_for(
    conn: Connection, ctx: PricingContext, tenant: Tenant, period: Period
) -> tuple[list[Adjustment], list[AdjustmentRecord]]:
    """Adjustment lines for ``period``'s invoice, and their input records.

    For each earlier finalized period with late usage: what the period is worth now (priced with
    its own invoice's inputs) less what the live invoices bill for it (its own invoice, and the
    adjustment lines for it on any live invoice). And when ``period`` itself is billed again (its
    invoice was voided), a line taking off what live invoices already billed for it as
    adjustments."""
    assert tenant.id is not None
    adjustments: list[Adjustment] = []
    records: list[AdjustmentRecord] = []
    adjusted = ctx.adjusted.get(str(period))
    if adjusted is None:  # once per period for every tenant of the context, not once per tenant
        adjusted = ctx.adjusted[str(period)] = repo.tenants_adjusted_for(conn, str(period), ctx.tenant_ids)
    earlier = repo.billed_lines(conn, tenant.id, str(period), None) if tenant.id in adjusted else []
    billed = billed_for(str(period), earlier, invoice_id=None, invoice_units=0)
    rebilled = rebilled_adjustment(str(period), tenant.currency, billed)
    if rebilled is not None:
        adjustments.append(rebilled[0])
        records.append(rebilled[1])
    todo = late_periods(period, ctx.late.get(tenant.id, ()), ctx.lookback)
    if not todo:
        return adjustments, records
    invoices = repo.live_for_periods(conn, tenant.id, todo)
    for for_period in todo:
        invoice = invoices.get(for_period)
        if invoice is None:
            continue
        inputs = InvoiceInputs.from_json(invoice.inputs)
        lines = repo.billed_lines(conn, tenant.id, for_period, invoice.id)
        billed = billed_for(for_period, lines, invoice_id=invoice.id, invoice_units=inputs.units)
        usage_now = [usage_totals(conn, tenant.id, s.start, s.end) for s in inputs.segments]
        late = late_adjustment(for_period, invoice.number, invoice.currency, inputs, usage_now, billed)
        if late is not None:
            adjustments.append(late[0])
            records.append(late[1])
    return adjustments, records
