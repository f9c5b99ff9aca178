"""Explain an invoice: each line traced back to its inputs, step by step. Pure: plain data in and out.

Input is what a finalized invoice stores (its ``inputs`` document and its lines with their
``detail``) plus, optionally, the usage buckets behind each segment today (events counted and the
range of buckets). Output is, per line, the ordered steps that produced its amount: events and
buckets, weights, included units, each tier slice, the unrounded amount and the rounding step,
discount, tax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billctl.core.money import exponent, format_amount, quantize


@dataclass(frozen=True)
class Step:
    label: str
    value: str


@dataclass(frozen=True)
class StoredLine:
    position: int
    kind: str
    description: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal  # rounded, major units
    unrounded: Decimal
    detail: Mapping[str, Any]  # the line's JSON detail as stored


@dataclass(frozen=True)
class Activity:
    """One endpoint's buckets in one segment, as stored now."""

    units: int
    events: int
    buckets: int
    first_bucket: int  # epoch seconds
    last_bucket: int


@dataclass
class ExplainedLine:
    line: StoredLine
    steps: list[Step] = field(default_factory=list)
    rounding: dict = field(default_factory=dict)

    def add(self, label: str, value: str) -> None:
        self.steps.append(Step(label, value))


def num(value: object, places: int = 10) -> str:
    """A decimal for people: thousands separators, its own decimals up to ``places`` (then "…")."""
    number = Decimal(str(value))
    exp = number.as_tuple().exponent
    if isinstance(exp, int) and -exp <= places:
        return f"{number:,f}"
    shown = number.quantize(Decimal(1).scaleb(-places))
    return f"{shown:,f}" + ("…" if shown != number else "")


def segment_dates(start: str, end: str, tz: str) -> str:
    """[Oct 16 00:00, Nov 1 00:00) in the tenant's zone reads "2026-10-16 – 2026-10-31 (UTC)"."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    first = datetime.fromisoformat(start).astimezone(zone).date()
    last = (datetime.fromisoformat(end) - timedelta(seconds=1)).astimezone(zone).date()
    return f"{first} – {last} ({tz})"


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def rounding_step(unrounded: Decimal, amount: Decimal, currency: str) -> dict:
    places = exponent(currency)
    return {
        "unrounded": str(unrounded),
        "rounded": str(amount),
        "difference": str(amount - unrounded),
        "rule": f"half-up to {places} decimal place(s) ({currency})",
        "exact": amount == unrounded,
    }


def _segment_of(inputs: Mapping, detail: Mapping) -> tuple[int, Mapping] | None:
    start = detail.get("start")
    for index, seg in enumerate(inputs.get("segments", [])):
        if seg["start"] == start:
            return index, seg
    return None


def _price_step(item: ExplainedLine, detail: Mapping, unrounded: Decimal) -> None:
    model = detail.get("model")
    if model == "per_unit":
        item.add("price (per unit)", f"{num(detail['units'])} units × {detail['unit_price']} = {num(unrounded)}")
    elif model == "graduated":
        upper = "∞" if detail.get("up_to") is None else f"{detail['up_to']:,}"
        flat = f" + flat fee {detail['flat_fee']}" if Decimal(str(detail.get("flat_fee", "0"))) else ""
        item.add(
            f"tier {detail['tier']} slice ({detail['from']:,}–{upper})",
            f"{num(detail['units_in_tier'])} units × {detail['unit_price']}{flat} = {num(unrounded)}",
        )
    elif model == "volume":
        upper = "∞" if detail.get("up_to") is None else f"{detail['up_to']:,}"
        flat = f" + flat fee {detail['flat_fee']}" if Decimal(str(detail.get("flat_fee", "0"))) else ""
        item.add(
            f"volume tier {detail['tier']} ({detail['from']:,}–{upper})",
            f"all {num(detail['units'])} units × {detail['unit_price']}{flat} = {num(unrounded)}",
        )
    elif model == "package":
        item.add(
            "packages",
            f"ceil({num(detail['units'])} / {detail['package_size']:,}) = {num(detail['packages'])} "
            f"× {detail['package_price']} = {num(unrounded)}",
        )
    else:
        item.add("price", "nothing billable: all weighted units fall within the included units")


def _usage_steps(
    item: ExplainedLine,
    inputs: Mapping,
    detail: Mapping,
    segment: tuple[int, Mapping] | None,
    activity: Sequence[Mapping[str, Activity]] | None,
) -> None:
    if "by_endpoint" not in detail:  # a further tier of the same usage
        return
    plan = segment[1]["plan"] if segment else None
    now = activity[segment[0]] if activity is not None and segment is not None else {}
    if plan:
        when = segment_dates(detail["start"], detail["end"], inputs.get("timezone", "UTC"))
        item.add("plan", f"{plan['code']} v{plan['version']}, {when}")
    for endpoint, info in detail["by_endpoint"].items():
        units, weight = info["units"], info["weight"]
        counted = now.get(endpoint)
        source = ""
        if counted is not None:
            where = (
                f"1 bucket at {_when(counted.first_bucket)} UTC"
                if counted.buckets == 1
                else f"{counted.buckets:,} buckets, {_when(counted.first_bucket)} … {_when(counted.last_bucket)} UTC"
            )
            source = f" from {counted.events:,} event(s) in {where}"
            if counted.units != units:
                source += f" (now {counted.units:,} units: {counted.units - units:+,} arrived after this invoice)"
        item.add(
            f"usage {endpoint}", f"{units:,} units{source}; weight {weight} → {num(info['weighted_units'])} weighted"
        )
    for endpoint in sorted(set(now) - set(detail["by_endpoint"])):
        counted = now[endpoint]
        item.add(
            f"usage {endpoint}",
            f"not on this invoice (now {counted.units:,} units from {counted.events:,} event(s): "
            "arrived after this invoice)",
        )
    fraction = Decimal(str(detail.get("fraction", "1")))
    included = detail["included_units"]
    how = ""
    if plan and fraction != 1:
        plan_included = plan["definition"].get("included_units", included)
        how = f" ({num(plan_included)} × {num(fraction, 6)} of the period, rounded down)"
    item.add("weighted units", num(detail["weighted_units"]))
    item.add("included units", f"{num(included)}{how}; {num(detail['included_used'])} used")
    item.add(
        "billable units", f"max(0, {num(detail['weighted_units'])} − {num(included)}) = {num(detail['billable_units'])}"
    )


def _credit_steps(item: ExplainedLine, detail: Mapping) -> None:
    """A prepaid credit line (``billctl.core.invoice_credits``): which grant, what it had, what it covered."""
    expires = f", expires {str(detail['expires_at'])[:10]}" if detail.get("expires_at") else ", never expires"
    item.add(
        "grant",
        f"{detail.get('grant_id')} ({detail.get('credit_kind')}, {num(detail['grant_amount'])}, "
        f"priority {detail.get('priority')}{expires})",
    )
    if detail.get("credit_kind") == "promotional":
        item.add("promotional credits reduce the taxable amount", "drawn before tax, like a discount")
    else:
        item.add("purchased credits settle the amount due", "drawn after tax, like a payment")
    drawn = Decimal(str(detail["remaining_before"])) - Decimal(str(detail["remaining_after"]))
    item.add(
        "drawn",
        f"{num(drawn)} of the {num(detail['remaining_before'])} left; {num(detail['remaining_after'])} left after",
    )


def explain_lines(
    inputs: Mapping,
    lines: Sequence[StoredLine],
    currency: str,
    activity: Sequence[Mapping[str, Activity]] | None = None,
) -> list[ExplainedLine]:
    """The steps behind each line. ``activity`` (one mapping per input segment: endpoint → buckets
    now) adds events counted and bucket ranges; without it the steps use the stored inputs only."""
    explained = []
    for line in lines:
        item = ExplainedLine(line)
        detail = line.detail
        segment = _segment_of(inputs, detail)
        if line.kind == "base":
            fraction = Decimal(str(detail.get("fraction", "1")))
            plan = segment[1]["plan"] if segment else {"code": detail.get("plan_code"), "version": "?"}
            when = segment_dates(detail["start"], detail["end"], inputs.get("timezone", "UTC"))
            item.add("plan", f"{plan['code']} v{plan['version']}, {when}")
            if fraction != 1:
                item.add("share of the period", f"{num(fraction, 10)} (segment duration / period duration)")
            item.add("base fee", f"{num(detail['base_fee'])} × {num(fraction, 10)} = {num(line.unrounded)}")
        elif line.kind == "usage":
            _usage_steps(item, inputs, detail, segment, activity)
            _price_step(item, detail, line.unrounded)
        elif line.kind == "minimum":
            item.add(
                "minimum",
                f"{detail['minimum']} × {num(detail.get('fraction', '1'), 10)} = {num(detail['prorated_minimum'])}",
            )
            item.add("charges before the minimum", num(detail["charges"]))
            item.add("top-up", f"{num(detail['prorated_minimum'])} − {num(detail['charges'])} = {num(line.unrounded)}")
        elif line.kind == "discount":
            if detail.get("kind") == "percent":
                item.add(
                    "discount",
                    f"{num(detail['value'])} % of the charges {num(detail['applies_to'])} = {num(detail['wanted'])}",
                )
            else:
                item.add("discount", f"fixed {num(detail['value'])}")
            applied = f"−{num(detail['applied'])}"
            if detail.get("capped"):
                applied += " (capped so the subtotal is not negative)"
            item.add("applied", applied)
        elif line.kind == "adjustment" and "already_billed_on" in detail:
            item.add("for period", f"{detail['for_period']}, billed again after its invoice was voided")
            item.add(
                "already billed",
                f"{int(detail['units']):+,} units, {num(detail['amount'])}, as adjustments on "
                f"{', '.join(detail['already_billed_on'])}: taken off so no unit is billed twice",
            )
        elif line.kind == "adjustment":
            before, after = Decimal(str(detail["charges_before"])), Decimal(str(detail["charges_now"]))
            now = sum(sum(u.values()) for u in detail.get("usage", []))
            if "billed_units" in detail:
                billed = int(detail["billed_units"])
            else:  # older adjustment lines kept the usage snapshot they were billed against
                billed = sum(sum(u.values()) for u in detail.get("billed_usage", []))
            item.add("for period", f"{detail['for_period']} (invoice {detail.get('invoice', '?')})")
            item.add("usage", f"billed {billed:,} units, now {now:,} units ({now - billed:+,})")
            item.add("charges before tax", f"billed {num(before)}, now {num(after)}: difference {num(after - before)}")
        elif line.kind == "tax" and "promotional_credits" in detail:
            item.add(
                "promotional credits reduce the taxable amount",
                f"charges {num(detail['charges'])} − promotional credits {num(detail['promotional_credits'])} "
                f"= {num(detail['on'])}",
            )
            item.add(
                "tax on the taxable amount",
                f"{num(detail['rate_percent'])} % of {num(detail['on'])} = {num(line.unrounded)}",
            )
        elif line.kind == "tax":
            item.add(
                "tax", f"{num(detail['rate_percent'])} % of the subtotal {num(detail['on'])} = {num(line.unrounded)}"
            )
        elif line.kind == "credit":
            _credit_steps(item, detail)
        item.rounding = rounding_step(line.unrounded, line.amount, currency)
        amount = format_amount(line.amount, currency)
        if item.rounding["exact"]:
            item.add("rounding", f"{amount} (exact, nothing to round)")
        else:
            difference = Decimal(item.rounding["difference"])
            item.add(
                "rounding",
                f"{num(line.unrounded)} → {amount} ({item.rounding['rule']}, {'+' if difference > 0 else ''}"
                f"{num(difference)})",
            )
        explained.append(item)
    return explained


def check_totals(
    lines: Sequence[StoredLine], subtotal: Decimal, tax: Decimal, total: Decimal, currency: str
) -> list[str]:
    """Problems with the arithmetic of stored lines (an empty list when everything adds up). The
    subtotal is every line but tax and purchased credits (drawn after tax, they settle part of the
    total: ``total = subtotal + tax - purchased credits``)."""
    problems = []

    def after_tax(x: StoredLine) -> bool:
        return x.kind == "credit" and x.detail.get("credit_kind") == "purchased"

    non_tax = sum((x.amount for x in lines if x.kind != "tax" and not after_tax(x)), Decimal(0))
    tax_lines = sum((x.amount for x in lines if x.kind == "tax"), Decimal(0))
    purchased = -sum((x.amount for x in lines if after_tax(x)), Decimal(0))
    if non_tax != subtotal:
        problems.append(f"lines add up to {non_tax}, the subtotal is {subtotal}")
    if tax_lines != tax:
        problems.append(f"tax lines add up to {tax_lines}, the tax is {tax}")
    if purchased and subtotal + tax - purchased != total:
        problems.append(f"subtotal + tax − purchased credits = {subtotal + tax - purchased}, the total is {total}")
    elif not purchased and subtotal + tax != total:
        problems.append(f"subtotal + tax = {subtotal + tax}, the total is {total}")
    for x in lines:
        if quantize(x.unrounded, currency) != x.amount and x.kind not in ("discount", "adjustment"):
            problems.append(f"line {x.position}: {x.unrounded} does not round to {x.amount}")
    return problems
