"""billctl run-monthly, billctl audit list, billctl invoices release"""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer

from billctl.cli.common import AllowOpenPeriodOpt, DryRunOpt, OutputOpt, YesOpt, confirm, state
from billctl.cli.output import Out
from billctl.core.money import format_amount, from_minor
from billctl.errors import ExitCode


def run_monthly(
    ctx: typer.Context,
    period: Annotated[
        str | None, typer.Option("--period", "-p", help="YYYY-MM (default: the previous month in billing.timezone).")
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
    allow_open_period: AllowOpenPeriodOpt = False,
) -> None:
    """Close a month end to end: lock, drain usage, finalize, hold suspicious invoices, write off
    expired credits, Stripe customers, push, payment status, credit alerts, summary. Safe to re-run
    after a crash at any point.

    --dry-run prints the plan (invoices with amounts, totals per currency, changes against last
    month, Stripe customers to create, invoices to push, anything held) and writes nothing."""
    from billctl.logs import RunLog
    from billctl.services import monthly
    from billctl.services.invoices import parse_period

    st = state(ctx)
    out = st.output(output)
    target = parse_period(period) if period else monthly.previous_period(st.app)
    if not dry_run:
        confirm(out, f"Close {target}: finalize, hold, push to Stripe?", yes)
    log = RunLog("run-monthly", enabled=None if not out.quiet else False)
    stop = threading.Event()
    signals: list[str] = []

    def on_signal(signum, _frame):  # type: ignore[no-untyped-def]
        signals.append(signal.Signals(signum).name)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.event("stopping after the item in progress", level="warning", signal=signals[-1])

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()

    def on_step(step: str, state_: str) -> None:
        if not log.enabled and state_ == "started":
            out.info(f"[bold]→ {step}[/bold]", markup=True)

    log.event("start", period=str(target), dry_run=dry_run, actor=st.app.actor)
    try:
        runner = monthly.MonthlyRun(
            st.app, target, dry_run=dry_run, log=log, stop=stop, on_step=on_step, allow_open_period=allow_open_period
        )
        report = runner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    seconds = time.monotonic() - started
    log.event(
        "done",
        exit_code=int(report.exit_code),
        seconds=round(seconds, 3),
        held=len(report.held),
        failed=len(report.failed),
        interrupted=report.interrupted,
    )
    url = st.app.config["monthly.pushgateway_url"]
    if url and not dry_run:
        try:
            monthly.push_metrics(url, report, seconds)
        except Exception as exc:  # noqa: BLE001 (metrics never fail a close)
            out.warn(f"could not push metrics to {url}: {exc}")
    if out.fmt == "json":
        out.json(report.as_dict())
    else:
        _render(out, report)
    if report.exit_code != ExitCode.OK:
        raise typer.Exit(int(report.exit_code))


def _money(minor: int | None, currency: str) -> str:
    return "—" if minor is None else format_amount(from_minor(minor, currency), currency)


def _render(out: Out, report: Any) -> None:
    title = f"run-monthly {report.period}" + (" · DRY RUN: nothing was written" if report.dry_run else "")
    out.table(
        ["step", "state", "seconds", "detail"],
        [
            (
                s["step"],
                s["state"],
                f"{s['seconds']:.1f}",
                ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("step", "state", "seconds")),
            )
            for s in report.steps
        ],
        title=title,
        right=["seconds"],
    )
    if report.invoices:
        out.table(
            ["tenant", "outcome", "number", "status", "total", "currency", "last month", "change %"],
            [
                (
                    i["tenant"],
                    i["outcome"],
                    i["number"] or ("(new)" if i["outcome"] == "would finalize" else ""),
                    i["status"] or "",
                    _money(i["total_minor"], i["currency"]),
                    i["currency"],
                    _money(i["previous_minor"], i["currency"]),
                    i["change_pct"] or "—",
                )
                for i in report.invoices
            ],
            title="invoices",
            right=["total", "last month", "change %"],
        )
        out.table(
            ["currency", "invoices", "total", "last month"],
            [
                (c, t["invoices"], _money(t["total_minor"], c), _money(t["previous_minor"], c))
                for c, t in report.totals().items()
            ],
            title="totals per currency",
            right=["invoices", "total", "last month"],
        )
    if report.held:
        out.table(
            ["tenant", "number", "total", "why held"],
            [(h["tenant"], h["number"] or "", f"{h['currency']} {h['total']}", h["reason"]) for h in report.held],
            title="held back from Stripe (release with `billctl invoices release NUMBER`)",
        )
    if report.not_over:
        out.table(
            ["tenant", "not finalized"],
            [(n["tenant"], n["reason"]) for n in report.not_over],
            title="period not over yet (run again later)",
        )
    if report.zero_usage:
        out.table(
            ["tenant", "units", "last month"],
            [(z["tenant"], z["units"], f"{z['previous_units']:,}") for z in report.zero_usage],
            title="no usage this month after plenty last month",
            right=["units", "last month"],
        )
    if report.customers:
        out.table(
            ["tenant", "action", "stripe id"],
            [(c["tenant"], c["action"], c.get("stripe_id") or "") for c in report.customers],
            title="Stripe customers",
        )
    if report.pushed:
        out.table(
            ["number", "tenant", "action", "stripe id", "status"],
            [
                (p["number"], p["tenant"], p["action"], p.get("stripe_id") or "", p.get("status") or "")
                for p in report.pushed
            ],
            title="Stripe invoices",
        )
    if report.attention:
        out.table(
            list(report.attention[0].keys()), [list(a.values()) for a in report.attention], title="needs attention"
        )
    if report.credits_expired:
        out.table(
            ["tenant", "grant", "amount", "currency", "expired", "state"],
            [
                (
                    x["tenant"],
                    x["grant"],
                    format_amount(x["amount"], x["currency"]),
                    x["currency"],
                    x["expired_at"].strftime("%Y-%m-%d"),
                    x["state"],
                )
                for x in report.credits_expired
            ],
            title="expired credits" + (" (would be written off)" if report.dry_run else ""),
            right=["amount"],
        )
    if report.credit_alerts:
        out.table(
            ["tenant", "available", "currency", "runs out", "why"],
            [
                (
                    a["tenant"],
                    format_amount(a["available"], a["currency"]),
                    a["currency"],
                    a["run_out_on"].isoformat() if a["run_out_on"] else "—",
                    "; ".join(a["reasons"]),
                )
                for a in report.credit_alerts
            ],
            title="low on prepaid credits (`billctl credits alerts`)",
            right=["available"],
        )
    for failure in report.failed:
        out.warn(f"failed ({failure['step']}): {failure.get('invoice') or failure['tenant']}: {failure['reason']}")
    for notice in report.notices:
        out.info(f"note: {notice}")
    if report.interrupted:
        out.warn("interrupted: the state is consistent; run again to complete the close")
    elif report.dry_run:
        out.success("dry run complete; nothing was written (database, Redis, Stripe)")
    elif report.exit_code == ExitCode.PARTIAL:
        out.warn(
            f"closed {report.period} with {len(report.held)} held, {len(report.failed)} failed and "
            f"{len(report.not_over)} not yet due"
        )
    else:
        out.success(f"closed {report.period}")


# -- audit ----------------------------------------------------------------------------------------
audit_app = typer.Typer(help="The audit trail: every state change, who made it and why.", no_args_is_help=True)


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option("--action", help="e.g. invoice.finalize, invoice.void")] = None,
    object_id: Annotated[str | None, typer.Option("--object", help="An invoice number, tenant key, plan...")] = None,
    actor: Annotated[str | None, typer.Option("--actor-is", help="Only this actor.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="Newest first.")] = 50,
    output: OutputOpt = None,
) -> None:
    """Recorded state changes (finalize, void, hold, release, push, payment status, plan and tenant
    changes), newest first."""
    import sqlalchemy as sa

    from billctl.db.models import AuditLog

    st = state(ctx)
    out = st.output(output)
    query = sa.select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if action:
        query = query.where(AuditLog.action.like(action.replace("*", "%")))
    if object_id:
        query = query.where(AuditLog.object_id == object_id)
    if actor:
        query = query.where(AuditLog.actor == actor)
    with st.app.session() as session:
        rows = [row for (row,) in session.execute(query)]
        docs = [
            {
                "id": r.id,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "action": r.action,
                "object_type": r.object_type,
                "object": r.object_id,
                "reason": r.reason,
                "detail": r.detail,
            }
            for r in rows
        ]
    out.rows(
        ["at", "actor", "action", "object", "reason", "detail"],
        [
            (
                d["at"][:19].replace("T", " "),
                d["actor"],
                d["action"],
                f"{d['object_type']} {d['object']}",
                d["reason"],
                " ".join(f"{k}={v}" for k, v in (d["detail"] or {}).items()),
            )
            for d in docs
        ],
        documents=docs,
    )


# -- invoices release -----------------------------------------------------------------------------
def register_release(invoices_app: typer.Typer) -> None:
    @invoices_app.command("release")
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
        if found.status != "held":
            from billctl.errors import Conflict

            raise Conflict(
                f"invoice {found.number} is {found.status}, not held", hint="only held invoices are released"
            )
        amount = f"{found.currency} {_money(found.total_minor, found.currency)}"
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
            raise typer.Exit(int(ExitCode.PARTIAL))
