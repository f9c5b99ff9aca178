"""billctl invoices preview|finalize|release: price a period, write its invoices, release a held one."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.common import AllowOpenPeriodOpt, DryRunOpt, OutputOpt, YesOpt, confirm, lazy_module, state
from billctl.cli.invoices.render import (
    CSV_COLUMNS,
    PeriodOpt,
    Summary,
    TenantOpt,
    _amount,
    _csv_rows,
    priced_doc,
    render_priced,
)
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import from_minor, to_minor
from billctl.errors import PartialFailure

if TYPE_CHECKING:
    from billctl.services import invoices as svc
else:
    svc = lazy_module("billctl.services.invoices")


def preview(ctx: typer.Context, period: PeriodOpt, tenant: TenantOpt = None, output: OutputOpt = None) -> None:
    """Price a period for every active tenant (or one) as a dry run. Writes nothing."""
    st = state(ctx)
    out = st.output(output)
    parsed = svc.parse_period(period)
    summary, docs = Summary(), []
    csv_rows: list[list] = []
    failed = 0
    for p in svc.iter_preview(st.app, parsed, tenant):
        summary.add(p, to_minor(p.draft.total, p.currency) if p.draft else None)
        failed += p.failed
        if out.fmt == "json":
            docs.append({**priced_doc(p), **({"status": "failed"} if p.failed else {})})
        elif out.fmt == "csv":
            csv_rows.extend(_csv_rows(priced_doc(p)))
        else:
            render_priced(out, p)
    if out.fmt == "json":
        out.json({"period": str(parsed), "dry_run": True, "invoices": docs, "summary": summary.doc()})
    elif out.fmt == "csv":
        out.csv(CSV_COLUMNS, csv_rows)
    else:
        summary.render(out, f"preview {parsed}")
    if failed:  # listed with the reason; finalize would fail them too (and finalize the others)
        raise PartialFailure(f"{failed} tenant(s) cannot be billed (listed above)")


def finalize(
    ctx: typer.Context,
    period: PeriodOpt,
    tenant: TenantOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
    allow_open_period: AllowOpenPeriodOpt = False,
) -> None:
    """Write immutable, numbered invoices for a period: exactly one per tenant. Safe to re-run.

    Only months that have ended in the tenant's time zone are finalized; a tenant whose month is
    still under way is listed and skipped (exit 6), and if that is every tenant nothing happens
    (exit 3), unless --allow-open-period. A tenant whose data cannot be billed (e.g. a plan amount
    that does not fit) is listed as failed (exit 6); the others are finalized."""
    st = state(ctx)
    out = st.output(output)
    parsed = svc.parse_period(period)
    if not allow_open_period:
        svc.require_period_over(st.app, parsed, tenant)  # before asking anything
    if not dry_run:
        confirm(out, f"Finalize {parsed} for {tenant or 'every active tenant'}? Finalized invoices are immutable.", yes)
    summary, docs = Summary(), []
    counts: dict[str, int] = defaultdict(int)

    def show(result: svc.FinalizeResult) -> None:
        counts[result.outcome] += 1
        p, invoice = result.priced, result.invoice
        if result.outcome in ("finalized", "would finalize") and invoice is not None:
            summary.add(p, invoice.total_minor)
            status = "finalized" if result.outcome == "finalized" else "dry run"
            if out.fmt == "json":
                docs.append(priced_doc(p, invoice.number, status))
            elif out.fmt == "table":
                render_priced(out, p, invoice.number + (" (dry run)" if dry_run else ""))
        else:
            summary.add(p, None)
            if result.invoice is not None:
                summary.skipped[-1] = (p.tenant.key, f"already finalized as {result.invoice.number}")
            if out.fmt == "json":
                docs.append({**priced_doc(p), "status": result.outcome})

    results = svc.finalize(st.app, parsed, tenant, dry_run=dry_run, on_result=show, allow_open_period=allow_open_period)
    if out.fmt == "json":
        out.json(
            {
                "period": str(parsed),
                "dry_run": dry_run,
                "invoices": docs,
                "summary": summary.doc(),
                "outcomes": dict(counts),
            }
        )
    elif out.fmt == "csv":
        out.csv(
            ["tenant", "period", "outcome", "number", "total", "currency"],
            [
                [
                    r.priced.tenant.key,
                    str(parsed),
                    r.outcome,
                    r.invoice.number if r.invoice else "",
                    str(from_minor(r.invoice.total_minor, r.invoice.currency)) if r.invoice else "",
                    r.priced.currency,
                ]
                for r in results
            ],
        )
    else:
        summary.render(out, f"{'dry run: ' if dry_run else ''}finalize {parsed}")
        done = counts.get("finalized", 0) + counts.get("would finalize", 0)
        verb = "would finalize" if dry_run else "finalized"
        out.success(
            f"{verb} {done} invoice(s); {counts.get('already finalized', 0)} already finalized "
            f"(nothing finalized twice); {counts.get('skipped', 0)} skipped"
        )
    incomplete = counts.get("failed", 0) + counts.get("not over", 0)
    if incomplete:
        raise PartialFailure(
            f"{counts.get('failed', 0)} tenant(s) failed and {counts.get('not over', 0)} not due yet (listed above); "
            "the others are finalized: fix and re-run (nothing is finalized twice)"
        )


def release(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Invoice number or id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is fine (recorded).")] = "reviewed",
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
) -> None:
    """Release an invoice that run-monthly held back, and push it to Stripe (when a key is set)."""
    from billctl.services import monthly
    from billctl.services.invoices import get_invoice

    st = state(ctx)
    out = st.output(output)
    found, tenant, _ = get_invoice(st.app, invoice)
    if found.status != InvoiceStatus.HELD:
        from billctl.errors import Conflict, PartialFailure

        raise Conflict(f"invoice {found.number} is {found.status}, not held", hint="only held invoices are released")
    amount = f"{found.currency} {_amount(found.total_minor, found.currency)}"
    if dry_run:
        if out.fmt == "json":  # the same document, as the real run's starts: still held, nothing pushed
            out.json({"number": found.number, "status": found.status, "pushed": None, "dry_run": True})
        else:
            out.success(f"would release {found.number} ({tenant.key}, {amount}; held: {found.hold_reason})")
        return
    confirm(out, f"Release {found.number} ({tenant.key}, {amount}) and push it to Stripe?", yes)
    gw = monthly.optional_gateway(st.app)  # a bad Stripe setting fails before the release, not after
    inv = monthly.release(st.app, invoice, reason)
    document: dict[str, Any] = {"number": inv.number, "status": inv.status, "pushed": None, "dry_run": False}
    if gw is None:
        out.info("note: no Stripe key configured; the next `billctl stripe push` sends it")
    else:
        from billctl.services.stripe_sync import push

        result = push(st.app, gw, None, tenant.key)
        outcome = next((o for o in result.outcomes if o.ref == inv.number), None)
        document["pushed"] = (
            None
            if outcome is None
            else {"action": outcome.action, "stripe_id": outcome.stripe_id, "note": outcome.note}
        )
    if out.fmt == "json":
        out.json(document)
    else:
        pushed = document["pushed"]
        out.success(f"released {inv.number}" + (f"; Stripe: {pushed['action']}" if pushed else ""))
    if document["pushed"] and document["pushed"]["action"] == "failed":
        raise PartialFailure(f"released {inv.number}, but the Stripe push failed: {document['pushed']['note']}")
