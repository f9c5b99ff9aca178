"""billctl report revenue"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import OutputOpt, lazy_module, state
from billctl.cli.output import Out, escape
from billctl.core.money import format_amount, from_minor
from billctl.core.revenue import Group, InvoiceSummary, Revenue, bar

if TYPE_CHECKING:
    from billctl.services import invoices as inv_svc
    from billctl.services import reports as svc
else:
    inv_svc = lazy_module("billctl.services.invoices")
    svc = lazy_module("billctl.services.reports")


app = typer.Typer(help="Reports over finalized invoices.", no_args_is_help=True)


def _amt(minor: int, currency: str) -> str:
    return format_amount(from_minor(minor, currency), currency)


def _pct(value: object) -> str:
    return "—" if value is None else f"{value:+}"


def _group_doc(g: Group) -> dict:
    doc = {"plan": g.plan} if g.plan != "*" else {}
    return {
        **doc,
        "currency": g.currency,
        "invoices": g.invoices,
        "revenue": inv_svc.money(g.revenue_minor, g.currency),
        "tax": inv_svc.money(g.tax_minor, g.currency),
        "total": inv_svc.money(g.total_minor, g.currency),
        "credited": inv_svc.money(g.credited_minor, g.currency),
        "usage": inv_svc.money(g.usage_minor, g.currency),
        "promotional_credits": inv_svc.money(g.promotional_minor, g.currency),
        "purchased_credits": inv_svc.money(g.purchased_minor, g.currency),
        "cash_due": inv_svc.money(g.cash_due_minor, g.currency),
        "previous_invoices": g.previous_invoices,
        "previous_revenue": inv_svc.money(g.previous_revenue_minor, g.currency),
        "change_percent": None if g.change_percent is None else str(g.change_percent),
    }


def _tenant_doc(i: InvoiceSummary) -> dict:
    return {
        "tenant": i.tenant,
        "invoice": i.number,
        "plan": i.plan,
        "currency": i.currency,
        "revenue": inv_svc.money(i.subtotal_minor, i.currency),
    }


def revenue_doc(r: Revenue) -> dict:
    return {
        "period": r.period,
        "previous_period": r.previous_period,
        "by_plan": [_group_doc(g) for g in r.by_plan],
        "by_currency": [_group_doc(g) for g in r.by_currency],
        "tenants": {
            "gained": [_tenant_doc(i) for i in r.gained],
            "lost": [_tenant_doc(i) for i in r.lost],
        },
        "top": [_tenant_doc(i) for i in r.top],
    }


CSV_COLUMNS = ["section", "plan", "tenant", "currency", "invoices", "revenue", "tax", "total", "previous_revenue",
               "change_percent"]  # fmt: skip


def _csv_rows(r: Revenue) -> list[list]:
    rows: list[list] = []
    for section, groups in (("plan", r.by_plan), ("currency", r.by_currency)):
        for g in groups:
            rows.append(
                [
                    section,
                    "" if g.plan == "*" else g.plan,
                    "",
                    g.currency,
                    g.invoices,
                    from_minor(g.revenue_minor, g.currency),
                    from_minor(g.tax_minor, g.currency),
                    from_minor(g.total_minor, g.currency),
                    from_minor(g.previous_revenue_minor, g.currency),
                    "" if g.change_percent is None else g.change_percent,
                ]
            )
    for section, items in (("gained", r.gained), ("lost", r.lost), ("top", r.top)):
        for i in items:
            revenue = from_minor(i.subtotal_minor, i.currency)
            rows.append(
                [
                    section,
                    i.plan,
                    i.tenant,
                    i.currency,
                    1,
                    "" if section == "lost" else revenue,
                    "",
                    "",
                    revenue if section == "lost" else "",
                    "",
                ]
            )
    return rows


def _table(
    out: Out, title: str, columns: list[str], rows: list[tuple], right: set[str], footer: Sequence[tuple] = ()
) -> None:
    """Like ``Out.table``, with the bar column (the last, unnamed one) never wrapped."""
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left", header_style="bold")
    for name in columns:
        if name == "":
            table.add_column("", no_wrap=True, overflow="crop")
        else:
            table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for index, row in enumerate(rows):
        table.add_row(*[escape(str(v)) for v in row], end_section=bool(footer) and index == len(rows) - 1)
    for row in footer:
        table.add_row(*[escape(str(v)) for v in row], style="bold")
    out.console.print(table)


def render_revenue(out: Out, r: Revenue) -> None:
    largest: dict[str, int] = {}
    for g in r.by_plan:
        largest[g.currency] = max(largest.get(g.currency, 0), g.revenue_minor)
    _table(
        out,
        f"Revenue {r.period} by plan (before tax, net of credit notes; bars within each currency)",
        ["plan", "currency", "invoices", "revenue", "credited", "with tax", f"{r.previous_period}", "change %", ""],
        [
            (
                g.plan,
                g.currency,
                g.invoices,
                _amt(g.revenue_minor, g.currency),
                _amt(g.credited_minor, g.currency) if g.credited_minor else "",
                _amt(g.total_minor, g.currency),
                _amt(g.previous_revenue_minor, g.currency) if g.previous_invoices else "—",
                _pct(g.change_percent),
                bar(g.revenue_minor, largest[g.currency], 16),
            )
            for g in r.by_plan
        ],
        {"invoices", "revenue", "credited", "with tax", f"{r.previous_period}", "change %"},
        [
            (
                "all plans",
                g.currency,
                g.invoices,
                _amt(g.revenue_minor, g.currency),
                _amt(g.credited_minor, g.currency) if g.credited_minor else "",
                _amt(g.total_minor, g.currency),
                _amt(g.previous_revenue_minor, g.currency) if g.previous_invoices else "—",
                _pct(g.change_percent),
                "",
            )
            for g in r.by_currency
        ],
    )
    credits = [g for g in r.by_currency if g.promotional_minor or g.purchased_minor]
    if credits:
        columns = ["currency", "usage", "promotional credits", "revenue", "tax", "purchased credits", "cash due"]
        _table(
            out,
            f"Prepaid credits {r.period}: usage − promotional + tax − purchased = cash due (net of credit notes)",
            columns,
            [
                (
                    g.currency,
                    _amt(g.usage_minor, g.currency),
                    _amt(g.promotional_minor, g.currency),
                    _amt(g.revenue_minor, g.currency),
                    _amt(g.tax_minor, g.currency),
                    _amt(g.purchased_minor, g.currency),
                    _amt(g.cash_due_minor, g.currency),
                )
                for g in credits
            ],
            set(columns) - {"currency"},
        )
    top_largest: dict[str, int] = {}
    for i in r.top:
        top_largest[i.currency] = max(top_largest.get(i.currency, 0), i.subtotal_minor)
    _table(
        out,
        f"Top tenants {r.period}",
        ["tenant", "plan", "currency", "revenue", ""],
        [
            (
                i.tenant,
                i.plan,
                i.currency,
                _amt(i.subtotal_minor, i.currency),
                bar(i.subtotal_minor, top_largest[i.currency], 16),
            )
            for i in r.top
        ],
        {"revenue"},
    )
    movement = [("gained", i, r.period) for i in r.gained] + [("lost", i, r.previous_period) for i in r.lost]
    out.table(
        ["", "tenant", "plan", "currency", "revenue in", "revenue"],
        [(what, i.tenant, i.plan, i.currency, when, _amt(i.subtotal_minor, i.currency)) for what, i, when in movement],
        title=f"Tenants gained ({len(r.gained)}) and lost ({len(r.lost)}) since {r.previous_period}",
        right=["revenue"],
    )


@app.command("revenue")
def revenue(
    ctx: typer.Context,
    period: Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")],
    top: Annotated[int, typer.Option("--top", min=1, max=1_000_000, help="How many top tenants per currency.")] = 10,
    output: OutputOpt = None,
) -> None:
    """Revenue of a period: totals per plan and currency, tenants gained and lost, top tenants,
    change against the previous period, with a bar chart. Only finalized (not void) invoices count,
    net of their credit notes (a credit note counts in the period of the invoice it corrects)."""
    st = state(ctx)
    out = st.output(output)
    report = svc.revenue_report(st.app, inv_svc.parse_period(period), top)
    if out.fmt == "json":
        out.json(revenue_doc(report))
    elif out.fmt == "csv":
        out.csv(CSV_COLUMNS, _csv_rows(report))
    else:
        if not report.by_plan:
            out.info(f"no finalized invoices for {report.period} or {report.previous_period}")
            return
        render_revenue(out, report)
