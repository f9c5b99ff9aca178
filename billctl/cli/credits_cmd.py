"""billctl credits grant|balance|ledger|alerts|expire|purchase"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, lazy_module, state
from billctl.core.credits import PRIORITY_DEFAULT
from billctl.core.money import format_amount, minor_unit, quantize, to_minor
from billctl.errors import DriftFound

if TYPE_CHECKING:
    from billctl.services import credits as svc
else:
    svc = lazy_module("billctl.services.credits")  # imported when a command runs, not for --help

app = typer.Typer(
    help="Prepaid credits: grants, balances, the ledger, burn-down alerts and expiry.", no_args_is_help=True
)


def money(amount: Decimal, currency: str) -> dict[str, Any]:
    amount = amount.quantize(minor_unit(currency))
    return {"minor": to_minor(amount, currency), "currency": currency, "decimal": str(amount)}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def grant_doc(result: svc.GrantResult) -> dict[str, Any]:
    g = result.grant
    return {
        "tenant": result.tenant,
        "dry_run": result.dry_run,
        "grant": {
            "id": g.id,
            "kind": g.kind,
            "amount": money(g.amount, g.currency),
            "effective_at": _iso(g.effective_at),
            "expires_at": _iso(g.expires_at),
            "priority": g.priority,
            "reason": g.reason,
        },
        "balance": money(result.balance, g.currency),
    }


@app.command("grant")
def grant(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(help="The tenant to credit.")],
    amount: Annotated[str, typer.Option("--amount", help="Amount in the tenant's currency, e.g. 100.00.")],
    kind: Annotated[
        str, typer.Option("--kind", help="promotional (given for free: before tax) or purchased (paid: after tax).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the audit log.")],
    currency: Annotated[
        str | None, typer.Option("--currency", help="Must be the tenant's currency (a check; default: it).")
    ] = None,
    effective: Annotated[
        str | None,
        typer.Option(
            "--effective", help="First day it can be used, YYYY-MM-DD in the tenant's time zone (default: now)."
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="Day it expires, YYYY-MM-DD: unusable from that day's start in the tenant's time zone "
            "(2026-11-01 still covers October). Default: never.",
        ),
    ] = None,
    priority: Annotated[
        int, typer.Option("--priority", help="0-100: among grants expiring together, lower numbers are drawn first.")
    ] = PRIORITY_DEFAULT,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
) -> None:
    """Grant credits to a tenant. Finalize draws them down, expiring grants first, then by priority,
    then oldest; promotional credits reduce the taxable amount, purchased ones settle the amount due
    after tax. Grants are never edited: corrections are new ledger entries."""
    st = state(ctx)
    request = svc.GrantRequest(
        amount=amount,
        kind=kind,
        reason=reason,
        currency=currency,
        effective=effective,
        expires=expires,
        priority=priority,
    )
    result = svc.grant_credits(st.app, tenant_id, request, dry_run=dry_run)
    out = st.output(output)
    doc = grant_doc(result)
    if out.fmt == "json":
        out.json(doc)
        return
    what = "would grant" if dry_run else f"granted (grant {result.grant.id})"
    g = doc["grant"]
    until = f", expires {g['expires_at'][:10]}" if g["expires_at"] else ""
    out.success(
        f"{result.tenant}: {what} {g['amount']['currency']} {g['amount']['decimal']} {g['kind']} credit"
        f"{until}; balance {doc['balance']['currency']} {doc['balance']['decimal']}"
    )


BALANCE_COLUMNS = ["tenant", "currency", "balance", "available", "promotional", "purchased", "scheduled", "expired"]


def balance_doc(b: svc.Balance) -> dict[str, Any]:
    return {
        "tenant": b.tenant,
        "currency": b.currency,
        "balance": money(b.balance, b.currency),
        "available": money(b.available, b.currency),
        "promotional": money(b.promotional, b.currency),
        "purchased": money(b.purchased, b.currency),
        "scheduled": money(b.scheduled, b.currency),
        "expired": money(b.expired, b.currency),
        "grants": b.grants,
    }


@app.command("balance")
def balance(
    ctx: typer.Context,
    tenant_id: Annotated[str | None, typer.Argument(help="One tenant (default: every tenant with credits).")] = None,
    output: OutputOpt = None,
) -> None:
    """Credit balances: the ledger's sum, split into what is available now (promotional, purchased),
    what is scheduled (not effective yet) and what has expired but is not written off yet."""
    st = state(ctx)
    rows = svc.balances(st.app, tenant_id)
    out = st.output(output)
    amounts = ["balance", "available", "promotional", "purchased", "scheduled", "expired"]
    out.rows(
        BALANCE_COLUMNS,
        [(b.tenant, b.currency, *(format_amount(getattr(b, a), b.currency) for a in amounts)) for b in rows],
        documents=[balance_doc(b) for b in rows],
        title="Credit balances",
        right=amounts,
    )
    if not rows and out.fmt == "table":
        out.info("no tenant has been granted credits")


LEDGER_COLUMNS = ["id", "at", "kind", "grant", "credit", "amount", "balance", "invoice", "source", "actor"]


@app.command("ledger")
def ledger(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(help="The tenant.")],
    output: OutputOpt = None,
) -> None:
    """A tenant's credit ledger: every grant, draw, expiry and reversal, immutable, with the running
    balance (the last one is the tenant's balance)."""
    st = state(ctx)
    book = svc.ledger(st.app, tenant_id)
    out = st.output(output)
    cur = book.currency
    if out.fmt == "json":
        out.json(
            {
                "tenant": book.tenant,
                "currency": cur,
                "balance": money(book.balance, cur),
                "entries": [
                    {
                        "id": e.id,
                        "at": e.at.isoformat(),
                        "kind": e.kind,
                        "grant": e.grant_id,
                        "credit_kind": e.credit_kind,
                        "amount": money(e.amount, cur),
                        "balance_after": money(e.balance_after, cur),
                        "invoice": e.invoice,
                        "source": e.source,
                        "actor": e.actor,
                        "created_at": e.created_at.isoformat(),
                    }
                    for e in book.lines
                ],
            }
        )
        return
    rows = [
        (
            e.id,
            e.at.strftime("%Y-%m-%d %H:%M"),
            e.kind,
            e.grant_id,
            e.credit_kind,
            format_amount(e.amount, cur),
            format_amount(e.balance_after, cur),
            e.invoice,
            e.source,
            e.actor,
        )
        for e in book.lines
    ]
    if out.fmt == "csv":
        out.csv(LEDGER_COLUMNS, rows)
    else:
        out.table(
            LEDGER_COLUMNS,
            rows,
            title=f"Credit ledger of {book.tenant} ({cur}): balance {format_amount(book.balance, cur)}",
            right=["amount", "balance"],
        )


ALERT_COLUMNS = ["tenant", "currency", "available", "at period end", "burn / day", "runs out", "alert"]


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    tenant_id: Annotated[str | None, typer.Argument(help="One tenant (default: every tenant with credits).")] = None,
    output: OutputOpt = None,
) -> None:
    """Burn-down of every tenant with credits: balance, recent burn rate (credits.burn_window_days),
    projected run-out date. Exits 10 when any tenant is below credits.alert_below or projected to run
    out before its current period ends, so a scheduled job can alert on it."""
    st = state(ctx)
    report = svc.credit_alerts(st.app, tenant_keys=[tenant_id] if tenant_id else None)
    out = st.output(output)
    docs = []
    rows = []
    for t in report.tenants:
        b = t.burn
        per_day = quantize(b.per_day, b.currency)
        docs.append(
            {
                "tenant": t.tenant,
                "currency": b.currency,
                "balance": money(b.balance, b.currency),
                "available": money(b.available, b.currency),
                "usable_at_period_end": money(b.usable_at_period_end, b.currency),
                "consumed": money(b.consumed, b.currency),
                "burn_per_day": money(per_day, b.currency),
                "run_out_on": b.run_out_on.isoformat() if b.run_out_on else None,
                "period_end": b.period_end.isoformat(),
                "threshold": money(b.threshold, b.currency) if b.threshold is not None else None,
                "alert": b.alert,
                "reasons": b.reasons(),
            }
        )
        rows.append(
            (
                t.tenant,
                b.currency,
                format_amount(b.available, b.currency),
                format_amount(b.usable_at_period_end, b.currency),
                format_amount(per_day, b.currency),
                b.run_out_on.isoformat() if b.run_out_on else "—",
                "; ".join(b.reasons()),
            )
        )
    if out.fmt == "json":
        out.json(
            {
                "at": report.at.isoformat(),
                "window_days": report.window_days,
                "checked": len(report.tenants),
                "alerts": len(report.alerts),
                "tenants": docs,
            }
        )
    elif out.fmt == "csv":
        out.csv(ALERT_COLUMNS, rows)
    elif rows:
        out.table(ALERT_COLUMNS, rows, title="Credit burn-down", right=["available", "at period end", "burn / day"])
    if report.alerts:
        names = ", ".join(t.tenant for t in report.alerts)
        raise DriftFound(f"{len(report.alerts)} of {len(report.tenants)} tenant(s) need credits: {names}")
    out.success(f"{len(report.tenants)} tenant(s) with credits checked: none low or running out this period")


@app.command("expire")
def expire(
    ctx: typer.Context,
    period: Annotated[str, typer.Option("--period", help="The period closed, YYYY-MM.")],
    tenant_id: Annotated[str | None, typer.Option("--tenant", help="One tenant (default: all).")] = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
) -> None:
    """Write off the credits expired by the end of a period (a step of the monthly close). A grant that
    expires as the period ends waits until the tenant's invoice for the period is finalized."""
    st = state(ctx)
    report = svc.expire_credits(st.app, period, tenant_keys=[tenant_id] if tenant_id else None, dry_run=dry_run)
    out = st.output(output)

    def doc(x: svc.Expired) -> dict[str, Any]:
        return {
            "tenant": x.tenant,
            "grant": x.grant_id,
            "amount": money(x.amount, x.currency),
            "expired_at": x.expired_at.isoformat(),
        }

    if out.fmt == "json":
        out.json(
            {
                "period": report.period,
                "dry_run": report.dry_run,
                "expired": [doc(x) for x in report.expired],
                "deferred": [doc(x) for x in report.deferred],
            }
        )
        return
    rows = [
        (x.tenant, x.grant_id, x.currency, format_amount(x.amount, x.currency), x.expired_at.strftime("%Y-%m-%d"), s)
        for s, xs in (("written off", report.expired), ("deferred", report.deferred))
        for x in xs
    ]
    columns = ["tenant", "grant", "currency", "amount", "expired", "state"]
    if out.fmt == "csv":
        out.csv(columns, rows)
    elif rows:
        out.table(columns, rows, title=f"Expired credits, {report.period}", right=["amount"])
    verb = "would write off" if dry_run else "wrote off"
    out.success(f"{report.period}: {verb} {len(report.expired)} expired grant remainder(s)")


from billctl.cli.credits_purchase_cmd import register as _register_purchase  # noqa: E402 - its own module

_register_purchase(app)
