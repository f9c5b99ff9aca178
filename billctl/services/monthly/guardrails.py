"""The close's guardrails: invoices that look wrong (above a limit, a jump against last month) are
held back from Stripe until an operator releases them; tenants whose usage dropped to zero are
reported. Hold and release move the local invoice status through ``billctl.core.invoice.transition``.
"""

from __future__ import annotations

from typing import Any

from billctl.core.bounds import REASON, text_problem
from billctl.core.guardrails import HoldRules, hold_reason, usage_dropped
from billctl.core.lifecycle import InvoiceStatus, can, transition
from billctl.core.money import from_minor
from billctl.core.periods import Period
from billctl.db.models import Invoice, utcnow
from billctl.db.repositories import runs
from billctl.errors import BadInput, NotFound
from billctl.services.context import App, audit
from billctl.services.monthly.summary import MonthlyReport


def apply_guardrails(
    app: App, report: MonthlyReport, period: Period, rules: HoldRules, *, dry_run: bool
) -> dict[str, Any]:
    """Hold the period's suspicious invoices (a dry run only says which it would hold) and list the
    tenants whose usage dropped to zero; the step's counts."""
    held = 0
    with app.uow(readonly=True) as uow:  # one query: id -> (hold reason, released, in Stripe)
        stored = runs.hold_states(uow.session, str(period))
    for inv in report.invoices:
        state = stored.get(inv["_id"])
        if inv["total_minor"] is None or inv["status"] not in (None, InvoiceStatus.FINALIZED):
            if inv["status"] == InvoiceStatus.HELD:
                report.held.append(held_doc(inv, state[0] if state else None))
            continue
        if state is not None and (state[1] or state[2]):
            continue  # released by an operator, or already in Stripe: never (re-)hold it
        reason = hold_reason(inv["total_minor"], inv["currency"], inv["previous_minor"], rules)
        if reason is None:
            continue
        held += 1
        inv["status"] = InvoiceStatus.HELD if not dry_run else "would hold"
        report.held.append(held_doc(inv, reason))
        if not dry_run:
            hold(app, inv["_id"], reason)
    dropped = zero_usage(app, report, period)
    return {"held": held, "zero_usage": len(dropped)}


def held_doc(inv: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {
        "tenant": inv["tenant"],
        "number": inv["number"],
        "reason": reason or "",
        "total": str(from_minor(inv["total_minor"], inv["currency"])),
        "total_minor": inv["total_minor"],
        "currency": inv["currency"],
    }


def zero_usage(app: App, report: MonthlyReport, period: Period) -> list[dict[str, Any]]:
    """Active tenants with no usage this period that had at least ``monthly.zero_usage_min_previous``
    units the period before (added to the report)."""
    from billctl.services.usage_views import top_tenants

    minimum = app.config.monthly.zero_usage_min_previous
    if minimum <= 0:
        return []
    now = {key: units for key, _, _, units in top_tenants(app, period, limit=10**9)}
    before = {key: units for key, _, _, units in top_tenants(app, period.previous(), limit=10**9)}
    with app.uow(readonly=True) as uow:
        active = runs.active_tenant_keys(uow.session)
    for key in sorted(active):
        if usage_dropped(now.get(key, 0), before.get(key, 0), minimum):
            report.zero_usage.append({"tenant": key, "units": 0, "previous_units": before[key]})
    return report.zero_usage


def hold(app: App, invoice_id: int, reason: str) -> None:
    """Hold a finalized invoice back from Stripe (recorded with the reason); anything else is left."""
    with app.uow() as uow:
        inv = uow.session.get(Invoice, invoice_id)
        if inv is None or not can(inv.status, "hold"):
            return
        inv.status = transition(inv.status, "hold", number=inv.number)
        inv.hold_reason = reason
        audit(uow.session, app, "invoice.hold", "invoice", inv.number, reason=reason)


def release(app: App, ref: str, reason: str) -> Invoice:
    """A held invoice goes back to finalized (to be pushed); recorded with who and why. Conflict
    (exit 9) when it is not held."""
    from billctl.services.invoices import get_invoice

    problem = text_problem(reason, "reason", REASON)
    if problem:
        raise BadInput(problem, field="reason")
    found, _tenant, _lines = get_invoice(app, ref)
    with app.uow() as uow:
        inv = uow.session.get(Invoice, found.id)
        if inv is None:
            raise NotFound(f"invoice {found.number} does not exist any more", field="invoice")
        inv.status = transition(inv.status, "release", number=inv.number)
        inv.released_at = utcnow()
        audit(uow.session, app, "invoice.release", "invoice", inv.number, reason=reason, hold_reason=inv.hold_reason)
        uow.session.flush()
        uow.session.expunge(inv)
    return inv
