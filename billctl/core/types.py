"""Plain data types shared by the pure core and the adapters.

All money is ``decimal.Decimal`` built from strings; all unit counts are ``int``
(weighted units may be ``Decimal`` when a plan uses fractional weights).
Instances are frozen so a rating result cannot be mutated after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

PriceModelKind = Literal["per_unit", "graduated", "volume", "package"]
# credit: a prepaid credit drawn (billctl.core.invoice_credits)
LineKind = Literal["base", "usage", "minimum", "discount", "adjustment", "tax", "credit"]
DiscountKind = Literal["percent", "fixed"]


@dataclass(frozen=True)
class Tier:
    """One price tier. ``up_to`` is an inclusive upper bound; ``None`` = unbounded (last tier)."""

    up_to: int | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal("0")


@dataclass(frozen=True)
class PriceModel:
    kind: PriceModelKind
    unit_price: Decimal | None = None  # per_unit
    tiers: tuple[Tier, ...] = ()  # graduated, volume
    package_size: int | None = None  # package
    package_price: Decimal | None = None  # package


@dataclass(frozen=True)
class Plan:
    code: str  # "basic", "pro", anything
    currency: str  # ISO 4217 upper case, e.g. "USD"
    base_fee: Decimal  # per full period, in major units
    included_units: int
    model: PriceModel
    weights: Mapping[str, Decimal] = field(default_factory=dict)  # endpoint -> weight; unlisted = 1
    minimum: Decimal | None = None  # monthly minimum of charges, major units
    version: int = 1
    description: str = ""


@dataclass(frozen=True)
class Segment:
    """Part of a period priced under one plan.

    ``fraction`` is the share of the period's duration this segment covers
    (1 for a whole period), used to prorate the base fee, the included units and the minimum.
    ``usage`` maps endpoint -> raw units (Σ of event ``units``) inside [start, end).
    """

    start: datetime
    end: datetime
    plan: Plan
    usage: Mapping[str, int]
    fraction: Decimal = Decimal("1")
    label: str = ""  # how invoice lines name the segment, e.g. "basic, 2026-10-01–2026-10-15" (local dates)


@dataclass(frozen=True)
class Discount:
    kind: DiscountKind
    value: Decimal  # percent (10 = 10 %) or fixed amount in major units of the invoice currency
    description: str = ""
    id: int | None = None


@dataclass(frozen=True)
class Adjustment:
    """A correction for an earlier, already finalized period, computed by the caller
    (difference between what the period is worth now and what was billed)."""

    for_period: str  # "2026-09"
    amount: Decimal  # already rounded to the currency's minor unit, may be negative
    description: str
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: Decimal  # units, or 1 for flat lines
    unit_price: Decimal | None  # None for lines that are not quantity x price
    amount: Decimal  # rounded once to the currency's minor unit (half-up)
    unrounded: Decimal  # the exact amount before rounding, for explanations
    detail: Mapping[str, object] = field(default_factory=dict)  # JSON-able explanation


@dataclass(frozen=True)
class InvoiceDraft:
    currency: str
    lines: tuple[Line, ...]  # every line including the tax line; Σ amounts == total
    subtotal: Decimal  # Σ of the lines before the tax line (purchased credit lines come after it)
    tax: Decimal
    total: Decimal  # subtotal + tax - purchased credits (billctl.core.invoice_credits)
