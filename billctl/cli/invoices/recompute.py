"""billctl invoices recompute: price finalized invoices again and show what differs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import OutputOpt, lazy_module, state
from billctl.cli.invoices.render import (
    PeriodOpt,
    TenantOpt,
    _amount,
    _qty,
    _signed,
    _with_progress,
)
from billctl.cli.output import Out, escape
from billctl.core.money import from_minor
from billctl.errors import DriftFound

if TYPE_CHECKING:
    from billctl.services import invoices as svc
    from billctl.services import recompute as recompute_svc
else:
    svc = lazy_module("billctl.services.invoices")
    recompute_svc = lazy_module("billctl.services.recompute")


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
                        (d.now or d.then).description,
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
        raise DriftFound(f"{len(changed)} invoice(s) differ and {len(missing)} missing for {parsed} (--exit-code)")
