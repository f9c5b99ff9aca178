"""billctl invoices preview|finalize|list|show|void"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated

import typer

from billctl.cli.common import AllowOpenPeriodOpt, DryRunOpt, OutputOpt, YesOpt, confirm, state
from billctl.cli.output import Out, clean
from billctl.core.bounds import REASON
from billctl.core.money import format_amount, format_money, from_minor, to_minor
from billctl.errors import BadInput, ExitCode
from billctl.services import invoices as svc
from billctl.services.context import check_text

app = typer.Typer(
    help="Preview, finalize, inspect and correct invoices (void, credit notes: see `invoices credit --help`).",
    no_args_is_help=True,
)
PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]


def _line_doc(kind, description, quantity, unit_price, amount_minor, unrounded, detail, currency) -> dict:  # type: ignore[no-untyped-def]
    return {
        "kind": kind,
        "description": description,
        "quantity": str(quantity),
        "unit_price": None if unrounded is None or unit_price is None else str(unit_price),
        "amount": svc.money(amount_minor, currency),
        "unrounded": str(unrounded),
        "detail": detail,
    }


def priced_doc(p: svc.Priced, number: str | None = None, status: str = "preview") -> dict:
    """The JSON document of one priced invoice (preview or finalize)."""
    doc: dict = {
        "tenant": p.tenant.key,
        "period": str(p.period),
        "currency": p.currency,
        "status": status,
        "number": number,
    }
    if p.draft is None:
        doc.update(
            {
                "status": "skipped" if not p.existing else "already finalized",
                "reason": p.skipped,
                "number": p.existing.number if p.existing else None,
            }
        )
        if p.existing:
            doc["total"] = svc.money(p.existing.total_minor, p.existing.currency)
        return doc
    c = p.currency
    doc["lines"] = [
        _line_doc(
            line.kind,
            line.description,
            line.quantity,
            line.unit_price,
            to_minor(line.amount, c),
            line.unrounded,
            svc._jsonable(line.detail),
            c,
        )
        for line in p.draft.lines
    ]
    doc["subtotal"] = svc.money_of(p.draft.subtotal, c)
    doc["tax"] = svc.money_of(p.draft.tax, c)
    doc["total"] = svc.money_of(p.draft.total, c)
    doc["previous_total"] = None if p.previous_total_minor is None else svc.money(p.previous_total_minor, c)
    doc["fingerprint"] = p.fingerprint
    return doc


FLAT_KINDS = ("discount", "minimum", "adjustment", "tax", "credit")


def _render_lines(out: Out, title: str, currency: str, lines: list[tuple], total_rows: list[tuple]) -> None:
    rows = [
        (kind, desc, "" if kind in FLAT_KINDS else qty, price if price is not None else "", amount)
        for kind, desc, qty, price, amount in lines
    ]
    footer = [("", label, "", "", value) for label, value in total_rows]
    out.table(
        ["kind", "description", "quantity", "unit price", f"amount {currency}"],
        rows,
        title=title,
        right=["quantity", "unit price", f"amount {currency}"],
        footer=footer,
    )


def _qty(value: Decimal | str) -> str:
    """Quantities for people: thousands separators, fractions (prorated base fees) to 4 places."""
    number = Decimal(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number.quantize(Decimal('0.0001')).normalize():,f}"


def render_priced(out: Out, p: svc.Priced, number: str | None = None) -> None:
    if p.draft is None:
        return
    from billctl.core.money import format_amount

    c = p.currency
    lines = [
        (
            line.kind,
            line.description,
            _qty(line.quantity),
            None if line.unit_price is None else str(line.unit_price),
            format_amount(line.amount, c),
        )
        for line in p.draft.lines
    ]
    totals = [
        ("subtotal", format_amount(p.draft.subtotal, c)),
        ("tax", format_amount(p.draft.tax, c)),
        ("total", format_amount(p.draft.total, c)),
    ]
    title = f"{number or 'preview'} · {p.tenant.key} · {p.period} · {c}"
    _render_lines(out, title, c, lines, totals)


class Summary:
    """Totals per currency and the change against the previous period."""

    def __init__(self) -> None:
        self.tenants = 0
        self.skipped: list[tuple[str, str]] = []
        self.totals: dict[str, int] = defaultdict(int)
        self.previous: dict[str, int] = defaultdict(int)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, p: svc.Priced, total_minor: int | None) -> None:
        if total_minor is None:
            self.skipped.append((p.tenant.key, p.skipped or ""))
            return
        self.tenants += 1
        self.totals[p.currency] += total_minor
        self.count[p.currency] += 1
        if p.previous_total_minor is not None:
            self.previous[p.currency] += p.previous_total_minor

    def doc(self) -> dict:
        return {
            "tenants": self.tenants,
            "skipped": [{"tenant": t, "reason": r} for t, r in self.skipped],
            "currencies": [
                {
                    "currency": c,
                    "invoices": self.count[c],
                    "total": svc.money(v, c),
                    "previous_total": svc.money(self.previous[c], c),
                    "change_percent": _change(v, self.previous[c]),
                }
                for c, v in sorted(self.totals.items())
            ],
        }

    def render(self, out: Out, title: str) -> None:
        if self.totals:
            rows = [
                (
                    c,
                    self.count[c],
                    format_money(from_minor(v, c), c),
                    format_money(from_minor(self.previous[c], c), c) if self.previous[c] else "—",
                    _change(v, self.previous[c]) or "—",
                )
                for c, v in sorted(self.totals.items())
            ]
            out.table(
                ["currency", "invoices", "total", "previous period", "change %"],
                rows,
                title=f"{title}: {self.tenants} invoice(s), {len(self.skipped)} not invoiced",
                right=["invoices", "total", "previous period", "change %"],
            )
        for tenant, reason in self.skipped:
            out.info(f"  {tenant}: {reason}")


def _change(now: int, before: int) -> str | None:
    if not before:
        return None
    return f"{(Decimal(now - before) * 100 / Decimal(before)).quantize(Decimal('0.1')):+}"


@app.command("preview")
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
        raise typer.Exit(int(ExitCode.PARTIAL))


CSV_COLUMNS = [
    "tenant",
    "period",
    "number",
    "status",
    "line",
    "kind",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "currency",
]


def _csv_rows(doc: dict) -> list[list]:
    return [
        [
            doc["tenant"],
            doc["period"],
            doc.get("number") or "",
            doc["status"],
            i,
            line["kind"],
            line["description"],
            line["quantity"],
            line["unit_price"] or "",
            line["amount"]["decimal"],
            doc["currency"],
        ]
        for i, line in enumerate(doc.get("lines", []), start=1)
    ]


@app.command("finalize")
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
        p = result.priced
        if result.outcome in ("finalized", "would finalize"):
            summary.add(p, result.invoice.total_minor)
            status = "finalized" if result.outcome == "finalized" else "dry run"
            if out.fmt == "json":
                docs.append(priced_doc(p, result.invoice.number, status))
            elif out.fmt == "table":
                render_priced(out, p, result.invoice.number + (" (dry run)" if dry_run else ""))
        else:
            summary.add(p, None)
            if result.invoice is not None:
                summary.skipped[-1] = (p.tenant.key, f"already finalized as {result.invoice.number}")
            if out.fmt == "json":
                docs.append({**priced_doc(p), "status": result.outcome})

    results = svc.finalize(
        st.app, parsed, tenant, dry_run=dry_run, on_result=show, allow_open_period=allow_open_period
    )
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
        out.warn(
            f"{counts.get('failed', 0)} tenant(s) failed and {counts.get('not over', 0)} not due yet (listed above); "
            "the others are finalized: fix and re-run (nothing is finalized twice)"
        )
        raise typer.Exit(int(ExitCode.PARTIAL))


@app.command("list")
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
    credited = credited_totals(st.app, [i.id for i, _ in rows])
    docs = [
        {
            "number": i.number,
            "tenant": t.key,
            "period": i.period,
            "status": i.status,
            "currency": i.currency,
            "total": svc.money(i.total_minor, i.currency),
            "credited": svc.money(credited.get(i.id, 0), i.currency),
            "finalized_at": i.finalized_at.isoformat(),
            "stripe_error": i.stripe_error,
        }
        for i, t in rows
    ]
    columns = ["number", "tenant", "period", "status", "total", "credited", "currency", "finalized"]
    cells = [
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


def _push_failed(invoice) -> str:  # type: ignore[no-untyped-def]
    """The invoice's last push failure, for stderr (``Out.warn`` never reads it as markup)."""
    return f"{invoice.number}: the last Stripe push failed: {invoice.stripe_error}"


def invoice_doc(invoice, tenant, lines) -> dict:  # type: ignore[no-untyped-def]
    c = invoice.currency
    return {
        "number": invoice.number,
        "id": invoice.id,
        "tenant": tenant.key,
        "period": invoice.period,
        "period_start": invoice.period_start.isoformat(),
        "period_end": invoice.period_end.isoformat(),
        "status": invoice.status,
        "currency": c,
        "lines": [
            _line_doc(x.kind, x.description, x.quantity, x.unit_price, x.amount_minor, x.unrounded, x.detail, c)
            for x in lines
        ],
        "subtotal": svc.money(invoice.subtotal_minor, c),
        "tax": svc.money(invoice.tax_minor, c),
        "total": svc.money(invoice.total_minor, c),
        "fingerprint": invoice.fingerprint,
        "finalized_at": invoice.finalized_at.isoformat(),
        "finalized_by": invoice.actor,
        "void_reason": invoice.void_reason,
        "voided_at": invoice.voided_at.isoformat() if invoice.voided_at else None,
        "stripe_error": invoice.stripe_error,  # why the last push failed (None once a push succeeds)
    }


@app.command("show")
def show(
    ctx: typer.Context, invoice: Annotated[str, typer.Argument(help="Invoice number or id.")], output: OutputOpt = None
) -> None:
    """Show an invoice with every line explained."""
    from billctl.cli.credit_cmd import note_doc
    from billctl.core.money import format_amount
    from billctl.services.credit_notes import notes_of

    st = state(ctx)
    inv, tenant, lines = svc.get_invoice(st.app, invoice)
    out = st.output(output)
    doc = invoice_doc(inv, tenant, lines)
    notes = notes_of(st.app, inv.id)
    credited = sum(n.total_minor for n, _ in notes)
    doc["credit_notes"] = [note_doc(n, inv, tenant, ls) for n, ls in notes]
    doc["credited"] = svc.money(credited, inv.currency)
    billed = inv.subtotal_minor + inv.tax_minor  # what a credit note can credit (before purchased credits)
    doc["left_to_credit"] = svc.money(0 if inv.status == "void" else billed - credited, inv.currency)
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
    if inv.status == "void":
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
                    n.stripe_credit_note_id or "not yet",
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


def _explain(detail: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in detail.items():
        if isinstance(value, dict):
            rows.extend(_explain(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                rows.extend(_explain(item, f"{prefix}{key}[{i}]."))
        else:
            rows.append((f"{prefix}{key}", str(value)))
    return rows


@app.command("void")
def void(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Invoice number or id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
) -> None:
    """Void a finalized invoice nobody has paid (recorded with the reason); the period can then be
    finalized again. An invoice pushed to Stripe is checked there first: one Stripe reports paid or
    partly paid is refused (exit 9; correct it with `invoices credit`), an open one is voided in
    Stripe at once, a draft left by an interrupted push is deleted by the next `stripe push`;
    without a Stripe key billctl cannot know, and refuses (exit 4). An invoice with credit notes
    cannot be voided (exit 9): credit what is left instead."""
    st = state(ctx)
    check_text(reason, "--reason", REASON)
    if not reason.strip():  # the service names the field; the command names its flag
        raise BadInput("--reason is required to void an invoice", field="reason")
    if not dry_run:
        confirm(st.out, f"Void invoice {invoice}?", yes)
    row, in_stripe = svc.void_invoice(st.app, invoice, reason, dry_run=dry_run)
    if dry_run:
        st.out.success(f"dry run: invoice {row.number} would be void ({in_stripe}); nothing written")
    else:
        st.out.success(f"invoice {row.number} is void ({in_stripe}): {row.void_reason}")


from billctl.cli import invoices_extra_cmd  # noqa: E402

invoices_extra_cmd.register(app)  # explain, recompute, export

from billctl.cli import credit_cmd  # noqa: E402

credit_cmd.register(app)  # credit, credit-notes
