"""One small strategy per price model: billable units in, explained invoice lines out.

Tier bounds are inclusive upper bounds (``up_to``), as in Stripe; the last tier is unbounded.
Each line's amount is its exact ``unrounded`` value rounded once, half-up, to the minor unit.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal

from billctl.core.money import quantize
from billctl.core.types import Line, PriceModel, Tier


def fmt_units(value: Decimal | int) -> str:
    number = Decimal(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number.normalize():,f}"


def _line(
    description: str, quantity: Decimal, unit_price: Decimal, unrounded: Decimal, currency: str, detail: dict
) -> Line:
    return Line(
        kind="usage",
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        amount=quantize(unrounded, currency),
        unrounded=unrounded,
        detail=detail,
    )


def _tier_range(low: int, tier: Tier) -> str:
    high = "∞" if tier.up_to is None else f"{tier.up_to:,}"
    return f"{low:,}–{high}"


def _flat(tier: Tier) -> str:
    return f" + flat fee {tier.flat_fee}" if tier.flat_fee else ""


def per_unit(model: PriceModel, billable: Decimal, currency: str) -> list[Line]:
    price = model.unit_price
    assert price is not None
    return [
        _line(
            f"{fmt_units(billable)} units × {price}",
            billable,
            price,
            billable * price,
            currency,
            {"model": "per_unit", "units": str(billable), "unit_price": str(price)},
        )
    ]


def graduated(model: PriceModel, billable: Decimal, currency: str) -> list[Line]:
    lines, lower = [], Decimal(0)
    for index, tier in enumerate(model.tiers, start=1):
        upper = None if tier.up_to is None else Decimal(tier.up_to)
        inside = (billable if upper is None else min(billable, upper)) - lower
        if inside <= 0:
            break
        unrounded = inside * tier.unit_price + tier.flat_fee
        lines.append(
            _line(
                f"Tier {index} ({_tier_range(int(lower) + 1, tier)}): "
                f"{fmt_units(inside)} × {tier.unit_price}{_flat(tier)}",
                inside,
                tier.unit_price,
                unrounded,
                currency,
                {
                    "model": "graduated",
                    "tier": index,
                    "from": int(lower) + 1,
                    "up_to": tier.up_to,
                    "units_in_tier": str(inside),
                    "unit_price": str(tier.unit_price),
                    "flat_fee": str(tier.flat_fee),
                },
            )
        )
        if upper is None:
            break
        lower = upper
    return lines


def volume(model: PriceModel, billable: Decimal, currency: str) -> list[Line]:
    if billable <= 0:
        return []
    low = 1
    for index, tier in enumerate(model.tiers, start=1):
        if tier.up_to is None or billable <= tier.up_to:
            unrounded = billable * tier.unit_price + tier.flat_fee
            return [
                _line(
                    f"{fmt_units(billable)} units × {tier.unit_price} (volume tier {index}, "
                    f"{_tier_range(low, tier)}){_flat(tier)}",
                    billable,
                    tier.unit_price,
                    unrounded,
                    currency,
                    {
                        "model": "volume",
                        "tier": index,
                        "from": low,
                        "up_to": tier.up_to,
                        "units": str(billable),
                        "unit_price": str(tier.unit_price),
                        "flat_fee": str(tier.flat_fee),
                    },
                )
            ]
        low = tier.up_to + 1
    raise AssertionError("the last tier is unbounded")


def package(model: PriceModel, billable: Decimal, currency: str) -> list[Line]:
    size, price = model.package_size, model.package_price
    assert size is not None and price is not None
    packages = (billable / size).to_integral_value(rounding=ROUND_CEILING)
    return [
        _line(
            f"{fmt_units(packages)} package(s) of {size:,} units × {price} ({fmt_units(billable)} units)",
            packages,
            price,
            packages * price,
            currency,
            {
                "model": "package",
                "units": str(billable),
                "package_size": size,
                "packages": str(packages),
                "package_price": str(price),
            },
        )
    ]


STRATEGIES: dict[str, Callable[[PriceModel, Decimal, str], list[Line]]] = {
    "per_unit": per_unit,
    "graduated": graduated,
    "volume": volume,
    "package": package,
}


def price(model: PriceModel, billable: Decimal | int, currency: str) -> list[Line]:
    """Usage lines for ``billable`` units (none when there is nothing to bill)."""
    billable = Decimal(billable)
    if billable <= 0:
        return []
    return STRATEGIES[model.kind](model, billable, currency)
