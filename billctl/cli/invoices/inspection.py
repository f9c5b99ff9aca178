"""billctl invoices list|show|explain|export: read invoices, trace their lines, export them for accounting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.common import OutputOpt, lazy_module, state
from billctl.cli.invoices.render import (
    CSV_COLUMNS,
    InvoiceArg,
    PeriodOpt,
    TenantOpt,
    _cells,
    _csv_rows,
    _explain,
    _push_failed,
    _qty,
    _render_lines,
    invoice_doc,
)
from billctl.cli.output import Format, Out, clean, escape
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import format_amount, from_minor, to_minor

if TYPE_CHECKING:
    from billctl.services import explain as explain_svc
    from billctl.services import invoices as svc
    from billctl.services import reports as export_svc
else:
    svc = lazy_module("billctl.services.invoices")
    explain_svc = lazy_module("billctl.services.explain")
    export_svc = lazy_module("billctl.services.reports")


def list_(
    ctx: typer.Context,
    tenant: TenantOpt = None,
    period: Annotated[str | None, typer.Option("--period", "-p", help="YYYY-MM.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="finalized, void, ...")] = None,
    output: OutputOpt = None,
) -> None:
    """List invoices."""
    from billctl.services.credit_notes import credited_totals

    st = state(ctx)
    out = st.output(output)
    rows = svc.list_invoices(st.app, tenant, svc.parse_period(period) if period else None, status)
    credited = credited_totals(st.app, [i.id for i, _ in rows if i.id is not None])
    docs = [
        {
            "number": i.number,
            "tenant": t.key,
            "period": i.period,
            "status": i.status,
            "currency": i.currency,
            "total": svc.money(i.total_minor, i.currency),
            "credited": svc.money(credited.get(i.id or 0, 0), i.currency),
            "finalized_at": i.finalized_at.isoformat(),
            "stripe_error": i.stripe_error,
        }
        for i, t in rows
    ]
    columns = ["number", "tenant", "period", "status", "total", "credited", "currency", "finalized"]
    cells: list[tuple[Any, ...]] = [
        (
            i.number,
            t.key,
            i.period,
            i.status,
            format_amount(from_minor(i.total_minor, i.currency), i.currency),
            format_amount(from_minor(credited[i.id], i.currency), i.currency) if i.id in credited else "",
            i.currency,
            i.finalized_at.strftime("%Y-%m-%d %H:%M"),
        )
        for i, t in rows
    ]
    if out.fmt == "csv":  # the last push failure: a column in CSV, in a table too long for a cell: below it
        columns.append("stripe_error")
        cells = [(*c, i.stripe_error) for c, (i, _) in zip(cells, rows, strict=True)]
    out.rows(columns, cells, documents=docs, right=["total", "credited"])
    for i, _ in rows if out.fmt == "table" else ():
        if i.stripe_error:
            out.warn(_push_failed(i))


def show(
    ctx: typer.Context, invoice: Annotated[str, typer.Argument(help="Invoice number or id.")], output: OutputOpt = None
) -> None:
    """Show an invoice with every line explained."""
    from billctl.cli.invoices.corrections import note_doc
    from billctl.core.money import format_amount
    from billctl.services.credit_notes import notes_of

    st = state(ctx)
    inv, tenant, lines = svc.get_invoice(st.app, invoice)
    out = st.output(output)
    doc = invoice_doc(inv, tenant, lines)
    assert inv.id is not None
    notes = notes_of(st.app, inv.id)
    credited = sum(n.total_minor for n, _ in notes)
    doc["credit_notes"] = [note_doc(n, inv, tenant, ls) for n, ls in notes]
    doc["credited"] = svc.money(credited, inv.currency)
    billed = inv.subtotal_minor + inv.tax_minor  # what a credit note can credit (before purchased credits)
    left = 0 if inv.status == InvoiceStatus.VOID else billed - credited
    doc["left_to_credit"] = svc.money(left, inv.currency)
    if out.fmt == "json":
        out.json(doc)
        return
    if out.fmt == "csv":
        out.csv(CSV_COLUMNS, _csv_rows(doc))
        return
    c = inv.currency
    rows = [
        (x.kind, x.description, _qty(x.quantity), x.unit_price, format_amount(from_minor(x.amount_minor, c), c))
        for x in lines
    ]
    totals = [
        ("subtotal", format_amount(from_minor(inv.subtotal_minor, c), c)),
        ("tax", format_amount(from_minor(inv.tax_minor, c), c)),
        ("total", format_amount(from_minor(inv.total_minor, c), c)),
    ]
    _render_lines(out, f"{inv.number} · {tenant.key} · {inv.period} · {inv.status}", c, rows, totals)
    out.info("[bold]how each line was computed[/bold]", markup=True)
    for position, line in enumerate(lines, start=1):
        out.info(f"  {position}. {line.description}")
        for key, value in _explain(line.detail):
            out.info(f"       {key}: {value}")
    if inv.status == InvoiceStatus.VOID:
        out.info(f"[red]void[/red] {inv.voided_at:%Y-%m-%d %H:%M}: {clean(inv.void_reason or '')}", markup=True)
    if inv.stripe_error:
        out.warn(_push_failed(inv))
    if notes:
        out.table(
            ["credit note", "issued", "lines", "total", "settle", "stripe", "reason"],
            [
                (
                    n.number,
                    n.created_at.strftime("%Y-%m-%d %H:%M"),
                    ", ".join(str(x.invoice_line_position) for x in ls if x.kind == "line") or n.mode,
                    format_amount(from_minor(n.total_minor, c), c),
                    n.settle.replace("_", "-"),
                    n.stripe_credit_note_id or n.stripe_status or "not yet",  # or "credits only"
                    n.reason,
                )
                for n, ls in notes
            ],
            title=f"credit notes on {inv.number}",
            right=["total"],
        )
        out.info(
            f"credited {doc['credited']['decimal']} {c} of {doc['total']['decimal']} {c}; "
            f"left to credit {doc['left_to_credit']['decimal']} {c}"
        )


def explain_doc(e: explain_svc.Explanation) -> dict:
    inv, c = e.invoice, e.invoice.currency
    return {
        "number": inv.number,
        "tenant": e.tenant.key,
        "period": inv.period,
        "status": inv.status,
        "currency": c,
        "lines": [
            {
                "position": x.line.position,
                "kind": x.line.kind,
                "description": x.line.description,
                "quantity": str(x.line.quantity),
                "unit_price": None if x.line.unit_price is None else str(x.line.unit_price),
                "amount": svc.money(to_minor(x.line.amount, c), c),
                "unrounded": str(x.line.unrounded),
                "rounding": x.rounding,
                "steps": [{"step": s.label, "value": s.value} for s in x.steps],
                "detail": svc.jsonable(dict(x.line.detail)),
            }
            for x in e.lines
        ],
        "subtotal": svc.money(inv.subtotal_minor, c),
        "tax": svc.money(inv.tax_minor, c),
        "total": svc.money(inv.total_minor, c),
        "inputs": inv.inputs,
        "verification": {
            "fingerprint": inv.fingerprint,
            "fingerprint_matches_inputs": e.fingerprint_matches,
            "inputs_reprice_to_same_lines": e.repriced_matches,
            "problems": e.problems,
        },
    }


def render_explanation(out: Out, e: explain_svc.Explanation) -> None:
    from rich.table import Table

    inv, c = e.invoice, e.invoice.currency
    table = Table(
        title=escape(f"{inv.number} · {e.tenant.key} · {inv.period} · {inv.status} · {c}"),
        title_justify="left",
        header_style="bold",
    )
    table.add_column("#", justify="right")
    table.add_column("line / step")
    table.add_column("how", overflow="fold")
    table.add_column(f"amount {c}", justify="right")
    for x in e.lines:
        table.add_row(
            *_cells(x.line.position, x.line.kind, x.line.description, format_amount(x.line.amount, c)), style="bold"
        )
        for index, step in enumerate(x.steps):
            table.add_row(*_cells("", f"  {step.label}", step.value, ""), end_section=index == len(x.steps) - 1)
    for label, minor in (("subtotal", inv.subtotal_minor), ("tax", inv.tax_minor), ("total", inv.total_minor)):
        table.add_row(*_cells("", label, "", format_amount(from_minor(minor, c), c)), style="bold")
    out.console.print(table)
    if e.problems:
        for problem in e.problems:
            out.warn(problem)
    else:
        out.success(
            f"the stored inputs match fingerprint {inv.fingerprint[:12]}… and price again to the same lines and total"
        )


def explain(ctx: typer.Context, invoice: InvoiceArg, output: OutputOpt = None) -> None:
    """Trace every line of an invoice to its inputs: events and buckets, weights, included units,
    tier slices, the unrounded amount and its rounding, discount, tax."""
    st = state(ctx)
    out = st.output(output)
    e = explain_svc.explain(st.app, invoice)
    if out.fmt == "json":
        out.json(explain_doc(e))
    elif out.fmt == "csv":
        out.csv(
            ["invoice", "line", "kind", "description", "step", "value", "amount", "currency"],
            [
                [
                    e.invoice.number,
                    x.line.position,
                    x.line.kind,
                    x.line.description,
                    s.label,
                    s.value,
                    str(x.line.amount),
                    e.invoice.currency,
                ]
                for x in e.lines
                for s in x.steps
            ],
        )
    else:
        render_explanation(out, e)


EXPORT_COLUMNS = [
    "tenant",
    "invoice",
    "period",
    "line",
    "kind",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "amount_minor",
    "tax_rate",
    "currency",
    "credit_note",
]


def export(
    ctx: typer.Context,
    period: PeriodOpt,
    tenant: TenantOpt = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", "--output", "-o", help="csv (default), json or table.")
    ] = Format.csv,
) -> None:
    """Every line of the period's finalized invoices, one row per line, for accounting.

    Tax is its own line (kind "tax"), computed once on the invoice subtotal, so the amounts of an
    invoice's rows add up to its total. Void invoices are left out. Each credit note on an invoice
    follows it, one row per credit note line: kind "credit" (or "credit_tax"), a negative amount,
    its number in the credit_note column; so an invoice's rows add up to what it bills net."""
    st = state(ctx)
    out = st.output(fmt)
    parsed = svc.parse_period(period)
    rows = export_svc.export_lines(st.app, parsed, tenant)
    table = [
        (
            r.tenant,
            r.invoice,
            r.period,
            r.line,
            r.kind,
            r.description,
            r.quantity,
            r.unit_price,
            str(from_minor(r.amount_minor, r.currency)),
            r.amount_minor,
            r.tax_rate,
            r.currency,
            r.credit_note,
        )
        for r in rows
    ]
    docs = [
        {
            "tenant": r.tenant,
            "invoice": r.invoice,
            "period": r.period,
            "line": r.line,
            "kind": r.kind,
            "description": r.description,
            "quantity": r.quantity,
            "unit_price": r.unit_price,
            "amount": svc.money(r.amount_minor, r.currency),
            "tax_rate": r.tax_rate,
            "currency": r.currency,
            "credit_note": r.credit_note or None,
        }
        for r in rows
    ]
    out.rows(EXPORT_COLUMNS, table, documents=docs, title=f"{parsed}: {len(rows)} line(s)", right=["amount"])
    invoices = len({r.invoice for r in rows})
    out.info(f"{len(rows)} line(s) of {invoices} invoice(s) for {parsed}")
