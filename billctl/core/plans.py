"""Plan files: validate a TOML-shaped dict into a ``Plan``, reporting every problem at once."""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Any

from billctl.core import bounds
from billctl.core.money import MoneyError, billing_rule, currency_problem, exponent, fits_minor_unit, parse_decimal
from billctl.core.types import Plan, PriceModel, Tier
from billctl.errors import PlanError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MODELS = ("per_unit", "graduated", "volume", "package")
TOP_KEYS = ("name", "currency", "description", "base_fee", "included_units", "minimum", "price", "weights")
PRICE_KEYS = {
    "per_unit": ("model", "unit_price"),
    "graduated": ("model", "tiers"),
    "volume": ("model", "tiers"),
    "package": ("model", "package_size", "package_price"),
}
ALL_PRICE_KEYS = ("model", "unit_price", "tiers", "package_size", "package_price")
TIER_KEYS = ("up_to", "unit_price", "flat_fee")


SHOWN_PROBLEMS = PlanError.SHOWN  # problems listed; the rest are counted ("... and N more")


def _unknown(keys: Any, allowed: tuple[str, ...], where: str, problems: list[str]) -> None:
    for key in keys:
        if key not in allowed:
            if len(problems) >= SHOWN_PROBLEMS:  # counted only: no suggestion for a key nobody will see
                problems.append(f"{where}{bounds.quote(key)}: unknown key")
                continue
            close = difflib.get_close_matches(str(key)[:100], allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            problems.append(f"{where}{bounds.quote(str(key))[1:-1]}: unknown key{hint}")


class _Checker:
    def __init__(self, currency: str | None):
        self.currency = currency
        self.problems: list[str] = []

    def money(self, value: Any, field: str, *, payable: bool, required: bool = False) -> Decimal | None:
        """A non-negative amount within its bound (core/bounds.py); ``payable`` ones (an amount
        charged as such) must fit the currency's minor unit, the others are unit prices."""
        if value is None:
            if required:
                self.problems.append(f"{field}: is required")
            return None
        try:
            number = parse_decimal(value, field=field)
        except MoneyError as exc:
            self.problems.append(str(exc))
            return None
        shown = bounds.quote(value)
        if number < 0:
            self.problems.append(f"{field}: must not be negative (got {shown})")
            return None
        # the bound first: a 40-digit amount cannot even be rounded under Decimal's 28 digits
        limit_minor = bounds.MAX_AMOUNT_MINOR if payable else bounds.MAX_UNIT_PRICE_MINOR
        limit = bounds.minor_limit(limit_minor, exponent(self.currency) if self.currency else 0)
        if number > limit:
            what = "an amount" if payable else "a unit price"
            self.problems.append(
                f"{field}: {shown} is above the limit for {what} of {limit:,f}"
                + (f" {self.currency}" if self.currency else "")
                + " (amounts must fit the invoice storage with a year of usage; see docs/reference/bounds.md)"
            )
            return None
        if not payable and bounds.decimals(number) > bounds.MAX_DECIMALS:
            self.problems.append(f"{field}: {shown} has more than {bounds.MAX_DECIMALS} decimal places")
            return None
        if payable and self.currency and not fits_minor_unit(number, self.currency):
            self.problems.append(
                f"{field}: {number if len(str(number)) <= bounds.ECHO else shown} is finer than {self.currency} "
                f"allows ({billing_rule(self.currency)})"
            )
            return None
        return number

    def integer(
        self, value: Any, field: str, *, minimum: int, maximum: int = bounds.MAX_UNITS, required: bool = False
    ) -> int | None:
        if value is None:
            if required:
                self.problems.append(f"{field}: is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{field}: must be a whole number (got {bounds.quote(value)})")
            return None
        if value < minimum:
            self.problems.append(f"{field}: must be at least {minimum} (got {value})")
            return None
        if value > maximum:
            self.problems.append(f"{field}: must be at most {maximum:,} (got {bounds.quote(value)})")
            return None
        return value


def parse_plan(data: dict[str, Any]) -> Plan:
    """Validate a plan definition; raises PlanError listing every problem found."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PlanError(["the plan must be a table of keys"])
    _unknown(data, TOP_KEYS, "", problems)

    name = data.get("name")
    if name is None:
        problems.append('name: is required, e.g. name = "pro"')
    elif not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problems.append(f"name: {bounds.quote(name)} must be lower-case letters, digits, - and _ (at most 64)")

    currency = data.get("currency")
    if currency is None:
        problems.append('currency: is required, e.g. currency = "USD"')
        currency = None
    elif currency_problem(currency):
        problems.append(f"currency: {currency_problem(currency)}")
        currency = None
    else:
        currency = currency.upper()
    check = _Checker(currency)
    check.problems = problems

    description = data.get("description", "")
    problem = bounds.text_problem(description, "description", bounds.PLAN_DESCRIPTION)
    if problem:
        problems.append(problem)
        description = ""
    base_fee = check.money(data.get("base_fee", "0"), "base_fee", payable=True)
    included = check.integer(data.get("included_units", 0), "included_units", minimum=0)
    minimum = check.money(data.get("minimum"), "minimum", payable=True)

    model = _price(data.get("price"), check)

    weights: dict[str, Decimal] = {}
    raw_weights = data.get("weights", {})
    if not isinstance(raw_weights, dict):
        problems.append('weights: must be a table, e.g. [weights] "/v1/ocr" = 3')
    else:
        for endpoint, raw in raw_weights.items():
            field = f"weights.{bounds.quote(endpoint)[1:-1]}"
            problem = bounds.text_problem(endpoint, "weights: the endpoint", bounds.ENDPOINT, required=True)
            if problem:
                problems.append(problem)
                continue
            if isinstance(raw, int) and not isinstance(raw, bool):
                weight = Decimal(raw)
            else:
                try:
                    weight = parse_decimal(raw, field=field)
                except MoneyError as exc:
                    problems.append(
                        str(exc).replace("write money as a string", "write the weight as an integer or a string")
                    )
                    continue
            if weight <= 0:
                problems.append(f"{field}: must be greater than 0 (got {bounds.quote(raw)})")
                continue
            if weight > bounds.MAX_WEIGHT or bounds.decimals(weight) > bounds.MAX_DECIMALS:
                problems.append(
                    f"{field}: {bounds.quote(raw)} must be at most {bounds.MAX_WEIGHT:,} with at most "
                    f"{bounds.MAX_DECIMALS} decimal places"
                )
                continue
            weights[str(endpoint)] = weight

    if problems:
        raise PlanError(problems)
    assert model is not None and base_fee is not None and included is not None and currency is not None
    assert name is not None
    return Plan(
        code=name,
        currency=currency,
        base_fee=base_fee,
        included_units=included,
        model=model,
        weights=weights,
        minimum=minimum,
        description=description,
    )


def _price(price: Any, check: _Checker) -> PriceModel | None:
    problems = check.problems
    if price is None:
        problems.append('price: is required, e.g. [price] model = "per_unit"')
        return None
    if not isinstance(price, dict):
        problems.append("price: must be a table")
        return None
    model = price.get("model")
    if model not in MODELS:
        close = difflib.get_close_matches(str(model)[:100], MODELS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"price.model: {bounds.quote(model)} must be one of {', '.join(MODELS)}{hint}")
        _unknown(price, ALL_PRICE_KEYS, "price.", problems)
        return None
    known = [k for k in price if k in ALL_PRICE_KEYS]
    _unknown([k for k in price if k not in ALL_PRICE_KEYS], ALL_PRICE_KEYS, "price.", problems)
    for key in known:
        if key not in PRICE_KEYS[model]:
            problems.append(
                f"price.{key}: does not belong to the {model} model (it takes {', '.join(PRICE_KEYS[model][1:])})"
            )
    if model == "per_unit":
        unit_price = check.money(price.get("unit_price"), "price.unit_price", payable=False, required=True)
        return PriceModel(kind="per_unit", unit_price=unit_price) if unit_price is not None else None
    if model == "package":
        size = check.integer(price.get("package_size"), "price.package_size", minimum=1, required=True)
        package_price = check.money(price.get("package_price"), "price.package_price", payable=True, required=True)
        if size is None or package_price is None:
            return None
        per_unit = bounds.minor_limit(bounds.MAX_UNIT_PRICE_MINOR, exponent(check.currency) if check.currency else 0)
        if package_price > per_unit * size:
            problems.append(
                f"price.package_price: {package_price} for {size:,} unit(s) is above the limit for a unit price "
                f"of {per_unit:,f} per unit; sell larger packages or lower the price"
            )
            return None
        return PriceModel(kind="package", package_size=size, package_price=package_price)
    tiers = _tiers(price.get("tiers"), check)
    return PriceModel(kind=model, tiers=tiers) if tiers is not None else None


def _tiers(raw: Any, check: _Checker) -> tuple[Tier, ...] | None:
    problems = check.problems
    if not isinstance(raw, list) or not raw:
        problems.append(
            "price.tiers: at least one tier is required, e.g. "
            'tiers = [{ up_to = 1000, unit_price = "0.01" }, { unit_price = "0.005" }]'
        )
        return None
    if len(raw) > bounds.MAX_TIERS:
        problems.append(f"price.tiers: {len(raw):,} tiers; at most {bounds.MAX_TIERS} are allowed")
        return None
    before = len(problems)
    tiers: list[Tier] = []
    previous: int | None = None
    for index, tier in enumerate(raw):
        where = f"price.tiers[{index}]"
        if not isinstance(tier, dict):
            problems.append(f'{where}: must be a table such as {{ up_to = 1000, unit_price = "0.01" }}')
            continue
        _unknown(tier, TIER_KEYS, f"{where}.", problems)
        last = index == len(raw) - 1
        up_to = tier.get("up_to")
        if last and up_to is not None:
            problems.append(f"{where}.up_to: the last tier must be unbounded (remove up_to)")
        if not last:
            up_to = check.integer(up_to, f"{where}.up_to", minimum=1, required=True)
            if up_to is not None and previous is not None and up_to <= previous:
                problems.append(
                    f"{where}.up_to: must be greater than the previous tier's up_to ({previous}); "
                    "tiers are sorted and must not overlap"
                )
            if up_to is not None:
                previous = up_to if previous is None else max(previous, up_to)
        unit_price = check.money(tier.get("unit_price"), f"{where}.unit_price", payable=False, required=True)
        flat_fee = check.money(tier.get("flat_fee", "0"), f"{where}.flat_fee", payable=True)
        if unit_price is not None and flat_fee is not None:
            tiers.append(Tier(up_to=None if last else up_to, unit_price=unit_price, flat_fee=flat_fee))
    return tuple(tiers) if len(problems) == before else None


def _s(value: Decimal | None) -> str:
    return str(value)  # a validated plan has the price its model needs


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Canonical, JSON-able form in the plan-file layout (decimals as strings)."""
    model = plan.model
    price: dict[str, Any] = {"model": model.kind}
    if model.kind == "per_unit":
        price["unit_price"] = _s(model.unit_price)
    elif model.kind == "package":
        price["package_size"] = model.package_size
        price["package_price"] = _s(model.package_price)
    else:
        tiers = []
        for tier in model.tiers:
            item: dict[str, Any] = {}
            if tier.up_to is not None:
                item["up_to"] = tier.up_to
            item["unit_price"] = _s(tier.unit_price)
            if tier.flat_fee:
                item["flat_fee"] = _s(tier.flat_fee)
            tiers.append(item)
        price["tiers"] = tiers
    out: dict[str, Any] = {"name": plan.code, "currency": plan.currency}
    if plan.description:
        out["description"] = plan.description
    out["base_fee"] = _s(plan.base_fee)
    out["included_units"] = plan.included_units
    if plan.minimum is not None:
        out["minimum"] = _s(plan.minimum)
    out["price"] = price
    if plan.weights:
        out["weights"] = {k: _s(v) for k, v in sorted(plan.weights.items())}
    return out
