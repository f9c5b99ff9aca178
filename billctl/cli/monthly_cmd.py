"""billctl run-monthly"""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer

from billctl.cli.common import AllowOpenPeriodOpt, DryRunOpt, OutputOpt, YesOpt, confirm, failure, state
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

    def on_signal(signum, _frame):
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
    url = st.app.config.monthly.pushgateway_url
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
        raise failure(report.exit_code, f"run-monthly {report.period} did not complete (see above)")


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
    for failed in report.failed:
        out.warn(f"failed ({failed['step']}): {failed.get('invoice') or failed['tenant']}: {failed['reason']}")
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
