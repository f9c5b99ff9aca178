"""What the invoices commands share: options, JSON documents, tables and the progress bar."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import lazy_module
from billctl.cli.output import Out, escape
from billctl.core.money import format_amount, format_money, from_minor, to_minor

if TYPE_CHECKING:
    from billctl.services import invoices as svc
else:
    svc = lazy_module("billctl.services.invoices")


PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="Billing month, YYYY-MM.")]


TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]


def _line_doc(kind, description, quantity, unit_price, amount_minor, unrounded, detail, currency) -> dict:
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
            svc.jsonable(line.detail),
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


def _push_failed(invoice) -> str:
    """The invoice's last push failure, for stderr (``Out.warn`` never reads it as markup)."""
    return f"{invoice.number}: the last Stripe push failed: {invoice.stripe_error}"


def invoice_doc(invoice, tenant, lines) -> dict:
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


InvoiceArg = Annotated[str, typer.Argument(help="Invoice number or id.")]


def _cells(*values: object) -> list[str]:
    return [escape("" if v is None else str(v)) for v in values]


def _amount(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_amount(from_minor(minor, currency), currency)


def _signed(minor: int, currency: str) -> str:
    return ("+" if minor > 0 else "") + format_amount(from_minor(minor, currency), currency)


def _with_progress(out: Out, what: str, func, *args):
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
