"""Guardrails of the monthly close (pure): which invoices are held back from Stripe, and which
tenants' usage dropped to nothing. A stolen API key or a runaway client shows up as an invoice far
above the tenant's usual one; an outage or a broken integration as a sudden zero."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billctl.core.money import format_amount, from_minor, per_currency, quantize, to_minor


@dataclass(frozen=True)
class HoldRules:
    above: dict[str, int]  # currency -> limit in minor units (hold when the total is above it)
    multiple: Decimal  # hold when the total is above multiple x the previous invoice (0 = never)

    @classmethod
    def parse(cls, above: str, multiple: str) -> HoldRules:
        limits = {code: to_minor(quantize(amount, code), code) for code, amount in per_currency(above).items()}
        return cls(limits, Decimal(multiple))


def hold_reason(total_minor: int, currency: str, previous_minor: int | None, rules: HoldRules) -> str | None:
    """Why an invoice should be held back (None: push it)."""
    limit = rules.above.get(currency)
    if limit is not None and total_minor > limit:
        return (
            f"total {_fmt(total_minor, currency)} is above the limit {_fmt(limit, currency)} (monthly.hold_above)"
        )
    grew = previous_minor is not None and previous_minor > 0 and rules.multiple > 0
    if grew and Decimal(total_minor) > rules.multiple * previous_minor:  # type: ignore[operator]
        ratio = Decimal(total_minor) / previous_minor  # type: ignore[operator]
        return (
            f"total {_fmt(total_minor, currency)} is {ratio:.1f}x the previous invoice "
            f"({_fmt(previous_minor, currency)}; monthly.hold_multiple = {rules.multiple})"  # type: ignore[arg-type]
        )
    return None


def _fmt(minor: int, currency: str) -> str:
    return f"{currency} {format_amount(from_minor(minor, currency), currency)}"


def usage_dropped(current_units: int, previous_units: int, min_previous: int) -> bool:
    """No usage this period after at least ``min_previous`` units the period before."""
    return current_units == 0 and min_previous > 0 and previous_units >= min_previous
