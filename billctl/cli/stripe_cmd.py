"""billctl stripe check|sync-customers|push|sync-status|reconcile|webhooks serve"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, lazy_module, state
from billctl.cli.output import Out
from billctl.core.money import format_amount, from_minor
from billctl.errors import DriftFound, PartialFailure

if TYPE_CHECKING:
    from billctl.services import invoices as inv_svc
    from billctl.services import stripe_sync as svc
else:
    inv_svc = lazy_module("billctl.services.invoices")
    svc = lazy_module("billctl.services.stripe_sync")


app = typer.Typer(
    help="Stripe: customers, invoice push, payment outcomes, reconciliation. Safe to re-run at any point.",
    no_args_is_help=True,
)
webhooks = typer.Typer(help="Receive Stripe webhooks (verified, deduplicated).", no_args_is_help=True)
app.add_typer(webhooks, name="webhooks")

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]
PeriodOpt = Annotated[str | None, typer.Option("--period", "-p", help="Only invoices of this month, YYYY-MM.")]


def _amount(minor: int | None, currency: str | None) -> str:
    if minor is None or currency is None:
        return ""
    return f"{format_amount(from_minor(minor, currency), currency)} {currency}"


@contextmanager
def _progress(out: Out, what: str) -> Iterator[tuple[Callable[[int], None], Callable[[], None]]]:
    """(set total, advance one) for a progress bar on stderr at a terminal; no-ops otherwise."""
    if out.quiet or not out.err.is_terminal:
        yield (lambda _total: None), (lambda: None)
        return
    from rich.progress import Progress

    with Progress(console=out.err, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield (lambda total: bar.update(task, total=total)), (lambda: bar.advance(task))


def _rows(out: Out, columns: list[str], rows: list, **kwargs: Any) -> None:
    """A list in the chosen format; an empty table is not drawn (the summary line says so)."""
    if rows or out.fmt != "table":
        out.rows(columns, rows, **kwargs)


def _outcome_doc(o: svc.Outcome) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": o.kind,
        "ref": o.ref,
        "tenant": o.tenant,
        "action": o.action,
        "stripe_id": o.stripe_id,
    }
    if o.kind in ("invoice", "credit_note", "credit_purchase"):
        doc.update(
            {
                "status": o.status,
                "stripe_number": o.stripe_number,
                "hosted_url": o.hosted_url,
                "total": inv_svc.money(o.total_minor, o.currency) if o.total_minor is not None and o.currency else None,
                # what Stripe collects: the total plus any customer balance Stripe applied
                "amount_due": inv_svc.money(o.amount_due_minor, o.currency)
                if o.amount_due_minor is not None and o.currency
                else None,
            }
        )
    doc["note"] = o.note
    return doc


def _summary(out: Out, report: svc.RunReport, what: str) -> None:
    parts = []
    for kind in ("customer", "invoice", "credit_note", "credit_purchase"):
        counts: dict[str, int] = {}
        for o in report.outcomes:
            if o.kind == kind:
                counts[o.action] = counts.get(o.action, 0) + 1
        if counts:
            parts.append(f"{kind.replace('_', ' ')}s " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    counts_text = "; ".join(parts) or "nothing to do"
    prefix = "dry run: " if report.dry_run else ""
    extra = f"; {report.writes_skipped} Stripe write(s) not sent" if report.dry_run else ""
    out.info(f"{prefix}{what}: {counts_text} ({report.requests} Stripe request(s), {report.retries} retried{extra})")
    if report.failures:
        out.error(f"{len(report.failures)} failed:")
        for o in report.failures:
            out.err.print(f"  {o.ref}: {o.note}", markup=False, highlight=False)


def _finish(report: svc.RunReport) -> None:
    if report.failures:
        raise PartialFailure(
            f"{len(report.failures)} of {len(report.outcomes)} item(s) failed",
            hint="the others are done; fix the cause and re-run (it resumes where it stopped)",
        )


@app.command("check")
def check(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show which Stripe key (kind and source, never the key), address, pinned API version and limits
    would be used."""
    st = state(ctx)
    from billctl.stripe.keys import API_VERSION, stripe_settings

    s = stripe_settings(st.app.config)
    doc = {
        "api_base": s.api_base,
        "api_version": API_VERSION,
        "key": s.key_kind,
        "key_source": s.key_source,
        "max_requests_per_second": s.max_requests_per_second,
        "max_retries": s.max_retries,
        "collection_method": s.collection_method,
        "days_until_due": s.days_until_due,
    }
    out = st.output(output)
    if out.fmt == "json":
        out.json(doc)
    else:
        out.rows(["setting", "value"], [(k, v) for k, v in doc.items()], title="Stripe")


@app.command("sync-customers")
def sync_customers(
    ctx: typer.Context, tenant: TenantOpt = None, dry_run: DryRunOpt = False, output: OutputOpt = None
) -> None:
    """Give every active tenant a Stripe customer: found by stored id, then by metadata, else created;
    name and email kept up to date. Never duplicates."""
    st = state(ctx)
    out = st.output(output)
    gw = svc.gateway(st.app, dry_run=dry_run)
    with _progress(out, "Stripe customers") as (total, advance):
        report = svc.sync_customers(st.app, gw, tenant, on_outcome=lambda _o: advance(), on_total=total)
    docs = [_outcome_doc(o) for o in report.outcomes]
    if out.fmt == "json":
        out.json({"dry_run": dry_run, "customers": docs, "counts": report.counts(), "requests": report.requests})
    else:
        _rows(
            out,
            ["tenant", "action", "stripe customer", "note"],
            [(o.ref, o.action, o.stripe_id, o.note) for o in report.outcomes],
            title="Stripe customers" + (" (dry run)" if dry_run else ""),
        )
    _summary(out, report, "customers")
    _finish(report)


@app.command("push")
def push(
    ctx: typer.Context,
    period: PeriodOpt = None,
    tenant: TenantOpt = None,
    dry_run: DryRunOpt = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16, help="Invoices pushed in parallel.")] = 1,
    output: OutputOpt = None,
) -> None:
    """Push finalized invoices to Stripe (draft, one item per line, finalize) and void there what was
    voided here; then credit notes not in Stripe yet, each on its invoice; then (without --period)
    credits purchases whose push stopped. Resumes an interrupted push without duplicating anything."""
    st = state(ctx)
    out = st.output(output)
    gw = svc.gateway(st.app, dry_run=dry_run)

    with _progress(out, "pushing to Stripe") as (total, advance):

        def progress(o: svc.Outcome) -> None:
            advance()
            if o.failed:
                out.warn(f"{o.ref}: {o.note}")

        report = svc.push(
            st.app,
            gw,
            inv_svc.parse_period(period) if period else None,
            tenant,
            workers=workers,
            on_outcome=progress,
            on_total=total,
        )
    invoices = [o for o in report.outcomes if o.kind in ("invoice", "credit_note", "credit_purchase")]
    if out.fmt == "json":
        out.json(
            {
                "dry_run": dry_run,
                "invoices": [_outcome_doc(o) for o in invoices if o.kind == "invoice"],
                "customers": [_outcome_doc(o) for o in report.outcomes if o.kind == "customer"],
                "credit_notes": [_outcome_doc(o) for o in report.outcomes if o.kind == "credit_note"],
                "credit_purchases": [_outcome_doc(o) for o in report.outcomes if o.kind == "credit_purchase"],
                "counts": report.counts(),
                "failed": [{"ref": o.ref, "reason": o.note} for o in report.failures],
                "requests": report.requests,
                "retries": report.retries,
            }
        )
    else:
        _rows(
            out,
            ["invoice", "tenant", "total", "action", "stripe invoice", "stripe number", "status", "note"],
            [
                (
                    o.ref,
                    o.tenant,
                    _amount(o.total_minor, o.currency),
                    o.action,
                    o.stripe_id,
                    o.stripe_number,
                    o.status,
                    o.note,
                )
                for o in invoices
            ],
            title="Stripe push" + (" (dry run)" if dry_run else ""),
            right=["total"],
        )
    _summary(out, report, "push")
    _finish(report)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


@app.command("sync-status")
def sync_status(ctx: typer.Context, dry_run: DryRunOpt = False, output: OutputOpt = None) -> None:
    """Pull payment outcomes from Stripe's events since the last run (stored cursor) and update each
    invoice's payment status: paid, open, payment failed (attempts, next retry), uncollectible, void.
    Lists what needs attention."""
    st = state(ctx)
    out = st.output(output)
    gw = svc.gateway(st.app, dry_run=dry_run)
    report = svc.sync_status(st.app, gw)
    changed = [c for c in report.changes if c.applied and c.before != c.after]
    if out.fmt == "json":
        out.json(
            {
                "dry_run": dry_run,
                "events": report.events,
                "cursor": report.cursor,
                "changes": [
                    {
                        "invoice": c.number,
                        "tenant": c.tenant,
                        "before": c.before,
                        "after": c.after,
                        "attempt_count": c.attempt_count,
                        "next_payment_attempt": c.next_payment_attempt.isoformat() if c.next_payment_attempt else None,
                        "event": c.event_id,
                        "event_type": c.event_type,
                    }
                    for c in changed
                ],
                "attention": [svc.attention_doc(a) for a in report.attention],
            }
        )
    else:
        _rows(
            out,
            ["invoice", "tenant", "before", "after", "attempts", "next attempt", "event"],
            [
                (
                    c.number,
                    c.tenant,
                    c.before or "",
                    c.after,
                    c.attempt_count,
                    _when(c.next_payment_attempt),
                    c.event_type,
                )
                for c in changed
            ],
            title=f"payment status changes{' (dry run)' if dry_run else ''}: {report.events} event(s) read",
        )
        if report.attention and out.fmt == "table":
            out.table(
                ["invoice", "tenant", "status", "attempts", "next attempt", "amount"],
                [
                    (
                        a["number"],
                        a["tenant"],
                        a["status"],
                        a["attempt_count"],
                        _when(a["next_payment_attempt"]),
                        _amount(a["total_minor"], a["currency"]),
                    )
                    for a in report.attention
                ],
                title="needs attention",
                right=["amount"],
            )
    out.info(
        f"{'dry run: ' if dry_run else ''}{report.events} event(s), {len(changed)} status change(s), "
        f"{len(report.attention)} invoice(s) need attention"
    )


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    period: PeriodOpt = None,
    tenant: TenantOpt = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Refresh stored Stripe ids and payment status from Stripe (local only).")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Compare local invoices with Stripe: missing, duplicated, amount or status mismatch. Changes
    nothing unless --fix. Exit 10 when drift remains."""
    st = state(ctx)
    out = st.output(output)
    gw = svc.gateway(st.app)
    report = svc.reconcile(st.app, gw, inv_svc.parse_period(period) if period else None, tenant, fix=fix)
    docs = [
        {
            "invoice": d.number,
            "tenant": d.tenant_key,
            "drift": d.kind,
            "detail": d.detail,
            "stripe_ids": list(d.stripe_ids),
        }
        for d in report.drifts
    ]
    if out.fmt == "json":
        out.json(
            {"checked": report.checked, "stripe_invoices": report.stripe_invoices, "drift": docs, "fixed": report.fixed}
        )
    else:
        _rows(
            out,
            ["invoice", "tenant", "drift", "detail"],
            [(d.number, d.tenant_key, d.kind, d.detail) for d in report.drifts],
            title=f"reconcile: {report.checked} local invoice(s), {report.stripe_invoices} in Stripe",
        )
    if report.fixed:
        out.success(f"refreshed {len(report.fixed)} invoice(s) from Stripe: {', '.join(report.fixed)}")
    if report.drifts:
        raise DriftFound(f"{len(report.drifts)} difference(s) between billctl and Stripe")
    out.success("billctl and Stripe agree")


@webhooks.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8787,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (put TLS in front for the internet).")
    ] = "127.0.0.1",
) -> None:
    """Receive Stripe webhooks: signature verified (stripe.webhook_secret), events applied like
    sync-status and deduplicated by id. Stops on Ctrl-C or SIGTERM."""
    from billctl.services.stripe_webhooks import WebhookServer
    from billctl.stripe.keys import webhook_secret

    st = state(ctx)
    out = st.out
    secret = webhook_secret(st.app.config)
    from billctl.services.schema_views import require_current_schema

    require_current_schema(st.app)  # before listening

    def log(status: int, body: dict, change: svc.Change | None) -> None:
        if change is None:
            line = f"{status} {body.get('error', '')}"
        elif not change.applied:
            line = f"{status} {change.event_type} {change.event_id} {change.note}"
        else:
            moved = (
                f"{change.before} -> {change.after}" if change.before != change.after else f"{change.after} (unchanged)"
            )
            line = f"{status} {change.event_type} {change.event_id} {change.number}: {moved}"
        if not out.quiet:
            out.err.print(line, soft_wrap=True, markup=False, highlight=False)

    server = WebhookServer(st.app, secret, host, port, on_result=log, log=out.warn)
    out.info(f"listening on {server.url} (POST Stripe events here); Ctrl-C to stop")

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        out.info("stopped")
    finally:
        server.server_close()
