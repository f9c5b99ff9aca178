"""Exact money: Decimal from strings, currency facts from Stripe (billctl.core.currencies), half-up
rounding once per line to the finest amount Stripe can charge, and the amounts Stripe's API takes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billctl.core.bounds import quote
from billctl.core.currencies import CURRENCIES, CurrencyFacts
from billctl.errors import MoneyError

CURRENCY_EXPONENTS: dict[str, int] = {code: f.exponent for code, f in CURRENCIES.items()}


def is_known_currency(currency: str) -> bool:
    """A currency billctl can bill exactly: one Stripe charges in (see currency_problem for why not)."""
    return isinstance(currency, str) and currency.upper() in CURRENCIES


def currency_problem(currency: object) -> str | None:
    """Why billctl cannot bill in ``currency`` (None: it can)."""
    if isinstance(currency, str) and currency.upper() in CURRENCIES:
        return None
    return (
        f"{quote(currency)} is not a currency Stripe charges in, so billctl cannot bill it exactly; "
        "use one of Stripe's presentment currencies (ISO 4217, e.g. USD, EUR, JPY, KWD)"
    )


def currency_facts(currency: str) -> CurrencyFacts:
    try:
        return CURRENCIES[currency.upper()]
    except (KeyError, AttributeError):
        raise MoneyError(f"unknown currency {quote(currency)}; use an ISO 4217 code such as USD") from None


def exponent(currency: str) -> int:
    """Decimal places of billctl's stored minor unit (what the database holds and output shows)."""
    return currency_facts(currency).exponent


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def billing_unit(currency: str) -> Decimal:
    """The finest amount Stripe charges in ``currency`` (USD 0.01, JPY 1, KWD 0.01, ISK 1)."""
    return Decimal(1).scaleb(-currency_facts(currency).billing_decimals)


def parse_decimal(value: object, *, field: str) -> Decimal:
    """A Decimal from a string or an integer. Floats are refused: they cannot hold exact money."""
    if isinstance(value, bool):
        raise MoneyError(f'{field}: expected a decimal string such as "29.00", got a boolean')
    if isinstance(value, float):
        raise MoneyError(
            f'{field}: write money as a string, e.g. {field} = "{value}" (a float cannot hold exact money)'
        )
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyError(f"{field}: {quote(value)} is not a decimal number") from None
    else:
        raise MoneyError(f'{field}: expected a decimal string such as "29.00", got {type(value).__name__}')
    if not number.is_finite():
        raise MoneyError(f"{field}: {quote(value)} is not a finite number")
    return number


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round once, half-up, to the finest amount Stripe charges in the currency (its billing unit),
    written with the currency's stored decimals (KWD 1.2345 -> 1.230, ISK 12.5 -> 13.00)."""
    rounded = amount.quantize(billing_unit(currency), rounding=ROUND_HALF_UP)
    return rounded.quantize(minor_unit(currency))


def fits_minor_unit(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` can be charged as it is: no finer than the currency's billing unit."""
    return amount == amount.quantize(billing_unit(currency), rounding=ROUND_HALF_UP)


def billing_rule(currency: str) -> str:
    """How finely ``currency`` is billed, for error messages: "Stripe charges KWD to 2 decimal place(s):
    sent to Stripe in thousandths ending in 0"."""
    f = currency_facts(currency)
    text = f"Stripe charges {f.code} to {f.billing_decimals} decimal place(s)"
    return f"{text}: {f.rule}" if f.rule else text


def to_minor(amount: Decimal, currency: str) -> int:
    if amount != amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP):
        raise MoneyError(f"{amount} {currency} is finer than the currency's minor unit; round it first")
    return int(amount.scaleb(exponent(currency)))


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-exponent(currency)).quantize(minor_unit(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    digits = exponent(currency)
    return f"{amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP):,.{digits}f}"


def format_money(amount: Decimal, currency: str) -> str:
    return f"{currency.upper()} {format_amount(amount, currency)}"


# ---------------------------------------------------------------- amounts in Stripe's API


def to_stripe_amount(minor: int, currency: str, *, check: bool = True) -> int:
    """Stored minor units -> the integer Stripe's API takes. Raises MoneyError for an amount Stripe
    refuses in this currency (finer than it charges), naming the rule, unless ``check`` is False
    (comparing with what Stripe holds)."""
    f = currency_facts(currency)
    amount = int(minor) * f.stripe_factor
    if check and amount % f.stripe_step:
        raise MoneyError(
            f"{format_money(from_minor(minor, currency), currency)} cannot be charged by Stripe "
            f"({billing_rule(currency)})"
        )
    return amount


def from_stripe_amount(amount: int, currency: str) -> Decimal:
    """An amount from Stripe's API as a Decimal in the currency's major unit."""
    return Decimal(int(amount)).scaleb(-currency_facts(currency).stripe_exponent)


def minor_from_stripe(amount: int, currency: str) -> int:
    """An amount from Stripe's API in billctl's stored minor units (UGX ``500`` -> 5; USD ``1234`` ->
    1234). Raises MoneyError for one finer than billctl's minor unit (Stripe never sends one)."""
    return to_minor(from_stripe_amount(amount, currency), currency)


def per_currency(text: str) -> dict[str, Decimal]:
    """'USD=50,JPY=5000' (a setting checked when the settings load) as {currency: amount}."""
    out: dict[str, Decimal] = {}
    for part in filter(None, text.replace(" ", "").split(",")):
        code, _, amount = part.partition("=")
        out[code.upper()] = Decimal(amount)
    return out


def money_json(minor: int, currency: str) -> dict[str, object]:
    """Money in JSON documents: integer minor units, currency, and a decimal string for humans."""
    return {"minor": minor, "currency": currency, "decimal": str(from_minor(minor, currency))}


def amount_json(amount: Decimal, currency: str) -> dict[str, object]:
    """``money_json`` of an amount in major units (rounded once to the minor unit, half-up)."""
    return money_json(to_minor(quantize(amount, currency), currency), currency)
