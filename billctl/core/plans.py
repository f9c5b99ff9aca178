"""Plan files: validate a TOML-shaped dict into a ``Plan``, reporting every problem at once."""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Any

from billctl.core.money import MoneyError, billing_rule, currency_problem, fits_minor_unit, parse_decimal
from billctl.core.types import Plan, PriceModel, Tier

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


class PlanError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _unknown(keys: Any, allowed: tuple[str, ...], where: str, problems: list[str]) -> None:
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            problems.append(f"{where}{key}: unknown key{hint}")


class _Checker:
    def __init__(self, currency: str | None):
        self.currency = currency
        self.problems: list[str] = []

    def money(self, value: Any, field: str, *, payable: bool, required: bool = False) -> Decimal | None:
        """A non-negative amount; ``payable`` ones must fit the currency's minor unit."""
        if value is None:
            if required:
                self.problems.append(f"{field}: is required")
            return None
        try:
            number = parse_decimal(value, field=field)
        except MoneyError as exc:
            self.problems.append(str(exc))
            return None
        if number < 0:
            self.problems.append(f"{field}: must not be negative (got {value})")
            return None
        if payable and self.currency and not fits_minor_unit(number, self.currency):
            self.problems.append(
                f"{field}: {value} is finer than {self.currency} allows ({billing_rule(self.currency)})"
            )
            return None
        return number

    def integer(self, value: Any, field: str, *, minimum: int, required: bool = False) -> int | None:
        if value is None:
            if required:
                self.problems.append(f"{field}: is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{field}: must be a whole number (got {value!r})")
            return None
        if value < minimum:
            self.problems.append(f"{field}: must be at least {minimum} (got {value})")
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
        problems.append(f"name: {name!r} must be lower-case letters, digits, - and _ (at most 64)")

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
    if not isinstance(description, str):
        problems.append("description: must be a string")
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
            field = f"weights.{endpoint}"
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
                problems.append(f"{field}: must be greater than 0 (got {raw})")
                continue
            weights[str(endpoint)] = weight

    if problems:
        raise PlanError(problems)
    assert model is not None and base_fee is not None and included is not None and currency is not None
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
        close = difflib.get_close_matches(str(model), MODELS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"price.model: {model!r} must be one of {', '.join(MODELS)}{hint}")
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


def _s(value: Decimal) -> str:
    return str(value)


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
