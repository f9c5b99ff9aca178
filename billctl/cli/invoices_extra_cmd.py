"""billctl invoices explain|recompute|export (registered on the ``invoices`` group by ``register``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from billctl.cli.common import OutputOpt, state
from billctl.cli.output import Out
from billctl.core.money import format_amount, from_minor, to_minor
from billctl.services import explain as explain_svc
from billctl.services import invoices as svc

InvoiceArg = Annotated[str, typer.Argument(help="Invoice number or id.")]


def _cells(*values: object) -> list[str]:
    return [escape("" if v is None else str(v)) for v in values]


# ---------------------------------------------------------------- explain


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
                "detail": svc._jsonable(dict(x.line.detail)),
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


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
