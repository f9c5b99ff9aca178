"""billctl invoices explain|recompute|export (registered on the ``invoices`` group by ``register``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from billctl.cli.common import OutputOpt, state
from billctl.cli.output import Format, Out
from billctl.core.money import format_amount, from_minor, to_minor
from billctl.errors import ExitCode
from billctl.services import explain as explain_svc
from billctl.services import invoices as svc
from billctl.services import recompute as recompute_svc
from billctl.services import reports as export_svc

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


# ---------------------------------------------------------------- recompute


PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]


def _amount(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_amount(from_minor(minor, currency), currency)


def _signed(minor: int, currency: str) -> str:
    return ("+" if minor > 0 else "") + format_amount(from_minor(minor, currency), currency)


def recompute_doc(r: recompute_svc.Recomputed, with_lines: bool) -> dict:
    c = r.invoice.currency
    doc: dict = {
        "number": r.invoice.number,
        "tenant": r.tenant.key,
        "period": r.invoice.period,
        "currency": c,
        "changed": r.changed,
        "same_inputs": r.same_inputs,
        "fingerprint": {"invoiced": r.invoice.fingerprint, "now": r.fingerprint_now},
        "invoiced": {
            "subtotal": svc.money(r.invoice.subtotal_minor, c),
            "tax": svc.money(r.invoice.tax_minor, c),
            "total": svc.money(r.invoice.total_minor, c),
        },
        "now": {
            "subtotal": svc.money(r.subtotal_now_minor, c),
            "tax": svc.money(r.tax_now_minor, c),
            "total": svc.money(r.total_now_minor, c),
        },
        "difference": {
            "subtotal": svc.money(r.delta_subtotal_minor, c),
            "tax": svc.money(r.delta_tax_minor, c),
            "total": svc.money(r.delta_total_minor, c),
        },
        "reasons": r.reasons,
        "proposal": r.proposal,
    }
    if with_lines:
        doc["lines"] = [
            {
                "key": d.key,
                "kind": d.kind,
                "status": d.status,
                "description": (d.now or d.then).description,  # type: ignore[union-attr]
                "invoiced": None
                if d.then is None
                else {"quantity": str(d.then.quantity), "amount": svc.money(d.then.amount_minor, c)},
                "now": None
                if d.now is None
                else {"quantity": str(d.now.quantity), "amount": svc.money(d.now.amount_minor, c)},
                "difference": svc.money(d.delta_minor, c),
            }
            for d in r.diffs
        ]
    return doc


MARK = {"same": "=", "changed": "~", "added": "+", "removed": "-"}


def render_diff(out: Out, r: recompute_svc.Recomputed) -> None:
    c = r.invoice.currency
    qty = _qty_text
    rows = [
        (
            MARK[d.status],
            d.kind,
            (d.now or d.then).description,  # type: ignore[union-attr]
            "" if d.then is None else qty(d.then.quantity),
            "" if d.now is None else qty(d.now.quantity),
            "" if d.then is None else _amount(d.then.amount_minor, c),
            "" if d.now is None else _amount(d.now.amount_minor, c),
            "" if d.delta_minor == 0 else _signed(d.delta_minor, c),
        )
        for d in r.diffs
    ]
    footer = [
        ("", "", label, "", "", _amount(then, c), _amount(now, c), "" if now == then else _signed(now - then, c))
        for label, then, now in (
            ("subtotal", r.invoice.subtotal_minor, r.subtotal_now_minor),
            ("tax", r.invoice.tax_minor, r.tax_now_minor),
            ("total", r.invoice.total_minor, r.total_now_minor),
        )
    ]
    out.table(
        ["", "kind", "line (now)", "qty invoiced", "qty now", "invoiced", "now", "change"],
        rows,
        title=f"{r.invoice.number} · {r.tenant.key} · {r.invoice.period} · {c}",
        right=["qty invoiced", "qty now", "invoiced", "now", "change"],
        footer=footer,
    )
    for reason in r.reasons:
        out.console.print(escape(f"  why: {reason}"))
    out.console.print(escape(f"  proposed: {r.proposal.get('action')}: {r.proposal.get('note')}"))


def _qty_text(value: object) -> str:
    from billctl.cli.invoices_cmd import _qty

    return _qty(value)  # type: ignore[arg-type]


def recompute(
    ctx: typer.Context,
    period: PeriodOpt,
    tenant: TenantOpt = None,
    diff: Annotated[bool, typer.Option("--diff", help="Show every line: invoiced, now, change.")] = False,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="Exit 10 when an invoice differs or one is missing (for a scheduled check)."),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Price finalized invoices again from today's data and show what differs, with a proposed
    correction. Writes nothing: corrections stay explicit (void, credit, adjustment)."""
    st = state(ctx)
    out = st.output(output)
    parsed = svc.parse_period(period)
    results = list(_with_progress(out, "recomputing", recompute_svc.recompute, st.app, parsed, tenant))
    changed = [r for r in results if r.changed]
    missing = recompute_svc.not_invoiced(st.app, parsed, tenant)
    if out.fmt == "json":
        out.json(
            {
                "period": str(parsed),
                "writes_nothing": True,
                "invoices": [recompute_doc(r, diff) for r in results],
                "not_invoiced": missing,
                "summary": {
                    "invoices": len(results),
                    "changed": len(changed),
                    "unchanged": len(results) - len(changed),
                },
            }
        )
    elif out.fmt == "csv":
        if diff:
            out.csv(
                [
                    "invoice",
                    "tenant",
                    "period",
                    "status",
                    "kind",
                    "description",
                    "quantity_invoiced",
                    "quantity_now",
                    "invoiced",
                    "now",
                    "change",
                    "currency",
                ],
                [
                    [
                        r.invoice.number,
                        r.tenant.key,
                        r.invoice.period,
                        d.status,
                        d.kind,
                        (d.now or d.then).description,  # type: ignore[union-attr]
                        "" if d.then is None else d.then.quantity,
                        "" if d.now is None else d.now.quantity,
                        "" if d.then is None else from_minor(d.then.amount_minor, r.invoice.currency),
                        "" if d.now is None else from_minor(d.now.amount_minor, r.invoice.currency),
                        from_minor(d.delta_minor, r.invoice.currency),
                        r.invoice.currency,
                    ]
                    for r in results
                    for d in r.diffs
                ],
            )
        else:
            out.csv(
                ["invoice", "tenant", "period", "invoiced", "now", "change", "currency", "same_inputs", "proposal"],
                [
                    [
                        r.invoice.number,
                        r.tenant.key,
                        r.invoice.period,
                        from_minor(r.invoice.total_minor, r.invoice.currency),
                        from_minor(r.total_now_minor, r.invoice.currency),
                        from_minor(r.delta_total_minor, r.invoice.currency),
                        r.invoice.currency,
                        r.same_inputs,
                        r.proposal.get("action"),
                    ]
                    for r in results
                ],
            )
    else:
        out.table(
            ["invoice", "tenant", "currency", "invoiced", "now", "change", "inputs", "proposal"],
            [
                (
                    r.invoice.number,
                    r.tenant.key,
                    r.invoice.currency,
                    _amount(r.invoice.total_minor, r.invoice.currency),
                    _amount(r.total_now_minor, r.invoice.currency),
                    "" if not r.delta_total_minor else _signed(r.delta_total_minor, r.invoice.currency),
                    "same" if r.same_inputs else "changed",
                    r.proposal.get("action", ""),
                )
                for r in results
            ],
            title=f"recompute {parsed}: {len(changed)} of {len(results)} invoice(s) differ",
            right=["invoiced", "now", "change"],
        )
        if diff:
            for r in changed:
                render_diff(out, r)
            if results and not changed:
                out.success("every invoice prices the same from today's data: same lines, same fingerprints")
        elif changed:
            out.info("re-run with --diff for the line-by-line differences and the proposed corrections")
        if not results:
            out.info(f"no finalized invoices for {parsed}")
    if missing:
        out.warn(f"{len(missing)} active tenant(s) with a plan have no invoice for {parsed}: {', '.join(missing)}")
    if exit_code and (changed or missing):
        raise typer.Exit(int(ExitCode.FOUND))


def _with_progress(out: Out, what: str, func, *args):  # type: ignore[no-untyped-def]
    """Run a generator service with a progress bar on stderr at a terminal (never when quiet,
    redirected or NO_COLOR-dumb); the service reports its total through ``progress``."""
    if out.quiet or not out.err.is_terminal:
        yield from func(*args)
        return
    from rich.progress import Progress

    with Progress(console=out.err, transient=True) as bar:
        task = bar.add_task(what, total=None)
        for item in func(*args, progress=lambda total: bar.update(task, total=total)):
            bar.advance(task)
            yield item


# ---------------------------------------------------------------- export

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


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("recompute")(recompute)
    app.command("export")(export)
