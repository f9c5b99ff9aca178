"""Rating: one tenant, one period (in segments), priced step by step as DESIGN.md orders it.

weighted units → included units → price model → base fee → minimum → discounts → adjustments → tax.
Every step that changes the amount is its own line; the total is the sum of the lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import ROUND_FLOOR, Decimal

from billctl.core.money import fits_minor_unit, quantize
from billctl.core.pricing import fmt_units, price
from billctl.core.types import Adjustment, Discount, InvoiceDraft, Line, Segment

ONE = Decimal(1)


def usage_from_rows(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Sum (endpoint, units) rows per endpoint; the order of rows does not matter."""
    totals: dict[str, int] = defaultdict(int)
    for endpoint, units in rows:
        totals[endpoint] += int(units)
    return dict(totals)


def _segment_label(segment: Segment) -> str:
    return segment.label or f"{segment.plan.code}, {segment.start:%Y-%m-%d %H:%M}–{segment.end:%Y-%m-%d %H:%M} UTC"


def _rate_segment(segment: Segment, currency: str, multi: bool) -> list[Line]:
    plan = segment.plan
    if plan.currency != currency:
        raise ValueError(f"plan {plan.code} is priced in {plan.currency}, the invoice is in {currency}")
    fraction = segment.fraction
    prefix = f"[{_segment_label(segment)}] " if multi else ""
    seg_detail = {
        "plan_code": plan.code,
        "plan_version": plan.version,
        "start": segment.start.isoformat(),
        "end": segment.end.isoformat(),
        "fraction": str(fraction),
    }
    lines: list[Line] = []

    if plan.base_fee > 0:
        unrounded = plan.base_fee * fraction
        share = "" if fraction == ONE else f", {fraction.quantize(Decimal('0.0001'))} of the period"
        lines.append(
            Line(
                kind="base",
                description=f"{prefix}Base fee ({plan.code}{share})",
                quantity=fraction,
                unit_price=plan.base_fee,
                amount=quantize(unrounded, currency),
                unrounded=unrounded,
                detail={**seg_detail, "base_fee": str(plan.base_fee)},
            )
        )

    by_endpoint = {}
    weighted_total = Decimal(0)
    for endpoint in sorted(segment.usage):
        units = int(segment.usage[endpoint])
        weight = Decimal(plan.weights.get(endpoint, ONE))
        weighted = units * weight
        weighted_total += weighted
        by_endpoint[endpoint] = {"units": units, "weight": str(weight), "weighted_units": str(weighted)}
    included = int((plan.included_units * fraction).to_integral_value(rounding=ROUND_FLOOR))
    included_used = min(weighted_total, Decimal(included))
    billable = max(Decimal(0), weighted_total - included)
    usage_detail = {
        **seg_detail,
        "weighted_units": str(weighted_total),
        "included_units": included,
        "included_used": str(included_used),
        "billable_units": str(billable),
        "by_endpoint": by_endpoint,
    }
    usage_lines = price(plan.model, billable, currency)
    if usage_lines:
        first = usage_lines[0]
        note = (
            f" — {fmt_units(weighted_total)} weighted units, {fmt_units(included_used)} of {included:,} included used"
            if included or weighted_total != billable
            else ""
        )
        usage_lines[0] = replace(
            first, description=f"{prefix}{first.description}{note}", detail={**usage_detail, **first.detail}
        )
        usage_lines[1:] = [
            replace(x, description=prefix + x.description, detail={**seg_detail, **x.detail}) for x in usage_lines[1:]
        ]
    else:
        usage_lines = [
            Line(
                kind="usage",
                description=f"{prefix}Usage: {fmt_units(weighted_total)} weighted units, "
                f"{fmt_units(included_used)} of {included:,} included units used",
                quantity=weighted_total,
                unit_price=None,
                amount=quantize(Decimal(0), currency),
                unrounded=Decimal(0),
                detail=usage_detail,
            )
        ]
    lines.extend(usage_lines)

    if plan.minimum is not None and plan.minimum > 0:
        floor = plan.minimum * fraction
        charges = sum((x.amount for x in lines), Decimal(0))
        if charges < quantize(floor, currency):
            unrounded = floor - charges
            lines.append(
                Line(
                    kind="minimum",
                    description=f"{prefix}Minimum top-up to {quantize(floor, currency)} (charges {charges})",
                    quantity=ONE,
                    unit_price=None,
                    amount=quantize(unrounded, currency),
                    unrounded=unrounded,
                    detail={
                        **seg_detail,
                        "minimum": str(plan.minimum),
                        "prorated_minimum": str(floor),
                        "charges": str(charges),
                    },
                )
            )
    return lines


def _discount_lines(discounts: Sequence[Discount], base: Decimal, currency: str) -> list[Line]:
    lines: list[Line] = []
    running = base
    for discount in discounts:
        if discount.kind == "percent":
            wanted = base * discount.value / 100
            what = f"{discount.value.normalize():f} % of {base}"
        else:
            wanted = discount.value
            what = f"fixed {discount.value}"
        rounded = quantize(wanted, currency)
        applied = min(rounded, max(running, Decimal(0)))
        capped = applied < rounded
        running -= applied
        detail = {
            "kind": discount.kind,
            "value": str(discount.value),
            "applies_to": str(base),
            "wanted": str(wanted),
            "applied": str(applied),
            "capped": capped,
            "discount_id": discount.id,
        }
        description = discount.description or "Discount"
        lines.append(
            Line(
                kind="discount",
                description=f"{description} ({what}" + (", capped so the subtotal is not negative)" if capped else ")"),
                quantity=ONE,
                unit_price=None,
                amount=-applied,
                unrounded=-(applied if capped else wanted),
                detail=detail,
            )
        )
    return lines


def rate(
    *,
    currency: str,
    segments: Sequence[Segment],
    discounts: Sequence[Discount] = (),
    tax_rate: Decimal = Decimal(0),
    adjustments: Sequence[Adjustment] = (),
) -> InvoiceDraft:
    """Price one tenant's period. ``tax_rate`` is a percent (8.25 = 8.25 %)."""
    multi = len(segments) > 1
    lines: list[Line] = []
    for segment in sorted(segments, key=lambda s: s.start):
        lines.extend(_rate_segment(segment, currency, multi))
    charges = sum((x.amount for x in lines), Decimal(0))
    lines.extend(_discount_lines(discounts, charges, currency))
    for adjustment in adjustments:
        if not fits_minor_unit(adjustment.amount, currency):
            raise ValueError(f"adjustment {adjustment.amount} is finer than {currency} allows")
        lines.append(
            Line(
                kind="adjustment",
                description=adjustment.description,
                quantity=ONE,
                unit_price=None,
                amount=adjustment.amount,
                unrounded=adjustment.amount,
                detail={"for_period": adjustment.for_period, **adjustment.detail},
            )
        )
    subtotal = sum((x.amount for x in lines), Decimal(0))
    tax = quantize(Decimal(0), currency)
    if tax_rate > 0:
        unrounded = subtotal * tax_rate / 100
        tax = quantize(unrounded, currency)
        lines.append(
            Line(
                kind="tax",
                description=f"Tax {tax_rate.normalize():f} % of {subtotal}",
                quantity=ONE,
                unit_price=None,
                amount=tax,
                unrounded=unrounded,
                detail={"rate_percent": str(tax_rate), "on": str(subtotal)},
            )
        )
    return InvoiceDraft(currency=currency, lines=tuple(lines), subtotal=subtotal, tax=tax, total=subtotal + tax)
