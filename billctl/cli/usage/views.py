"""billctl usage show|top|lag|prune: usage out, the stream's backlog, the dedupe window."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, state


def _bar(value: int, peak: int, width: int = 40) -> str:
    if peak <= 0 or value <= 0:
        return ""
    eighths = round(value / peak * width * 8)
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def show(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant key.")],
    period: Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")],
    output: OutputOpt = None,
) -> None:
    """One tenant's usage in a period: totals per endpoint and a per-day bar chart (tenant's time zone)."""
    from billctl.services.invoices import parse_period
    from billctl.services.usage_views import tenant_usage

    st = state(ctx)
    out = st.output(output)
    usage = tenant_usage(st.app, tenant, parse_period(period))
    if out.fmt == "json":
        out.json(
            {
                "tenant": usage.tenant,
                "period": usage.period,
                "timezone": usage.timezone,
                "events": usage.events,
                "units": usage.units,
                "endpoints": [{"endpoint": e, "events": n, "units": u} for e, n, u in usage.endpoints],
                "days": [{"date": d, "units": u} for d, u in usage.days],
            }
        )
        return
    if out.fmt == "csv":
        out.csv(["endpoint", "events", "units"], usage.endpoints)
        return
    out.table(
        ["endpoint", "events", "units"],
        [(e, f"{n:,}", f"{u:,}") for e, n, u in usage.endpoints],
        title=f"{usage.tenant} · {usage.period} ({usage.timezone})",
        right=["events", "units"],
        footer=[("total", f"{usage.events:,}", f"{usage.units:,}")],
    )
    peak = max((u for _, u in usage.days), default=0)
    out.table(
        ["day", "units", ""],
        [(d, f"{u:,}", _bar(u, peak)) for d, u in usage.days],
        title="units per day",
        right=["units"],
    )


def top(
    ctx: typer.Context,
    period: Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many tenants.")] = 10,
    output: OutputOpt = None,
) -> None:
    """Tenants ranked by units used in a period."""
    from billctl.services.invoices import parse_period
    from billctl.services.usage_views import top_tenants

    st = state(ctx)
    out = st.output(output)
    rows = top_tenants(st.app, parse_period(period), limit)
    peak = rows[0][3] if rows else 0
    if out.fmt == "table":
        out.table(
            ["#", "tenant", "name", "events", "units", ""],
            [(i, k, name, f"{n:,}", f"{u:,}", _bar(u, peak, 30)) for i, (k, name, n, u) in enumerate(rows, 1)],
            title=f"top tenants · {period}",
            right=["#", "events", "units"],
        )
    else:
        out.rows(["rank", "tenant", "name", "events", "units"], [(i, *r) for i, r in enumerate(rows, 1)])


def lag(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Each stream's length and each consumer group's backlog (lag), pending entries and the age of
    the oldest pending one: what a monitor should alert on."""
    from billctl.services.usage_views import stream_lag

    st = state(ctx)
    out = st.output(output)
    streams = stream_lag(st.app)
    if out.fmt == "json":
        out.json([{"stream": s.stream, "length": s.length, "groups": s.groups} for s in streams])
        return
    rows: list[tuple[Any, ...]] = []
    for s in streams:
        if not s.groups:
            rows.append((s.stream, f"{s.length:,}", "-", "", "", "", "", ""))
        for g in s.groups:
            age = g["oldest_pending_age_s"]
            rows.append(
                (
                    s.stream,
                    f"{s.length:,}",
                    g["group"],
                    g["consumers"],
                    "?" if g["lag"] is None else f"{g['lag']:,}",
                    f"{g['pending']:,}",
                    "" if age is None else f"{age:,} s",
                    g["last_delivered"],
                )
            )
    out.rows(
        ["stream", "length", "group", "consumers", "lag", "pending", "oldest pending", "last delivered"],
        rows,
        right=["length", "consumers", "lag", "pending", "oldest pending"],
    )


def prune(ctx: typer.Context, dry_run: DryRunOpt = False, output: OutputOpt = None) -> None:
    """Forget event ids counted longer ago than usage.dedupe_days (the dedupe window)."""
    from billctl.services.usage_views import prune_seen

    st = state(ctx)
    out = st.output(output)
    result = prune_seen(st.app, dry_run=dry_run)
    if result.warning:
        out.warn(result.warning)
    if out.fmt == "json":
        out.json({"dropped": result.dropped, "cutoff_epoch": result.cutoff, "dry_run": dry_run})
    else:
        out.success(
            f"{'would forget' if dry_run else 'forgot'} {result.dropped:,} event ids older than "
            f"{st.app.config.usage.dedupe_days} days"
        )
