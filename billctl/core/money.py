"""Exact money: Decimal from strings, currency exponents as Stripe uses them, half-up rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billctl.core.bounds import quote

ZERO_DECIMAL = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "JPY",
    "KMF",
    "KRW",
    "MGA",
    "PYG",
    "RWF",
    "UGX",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
TWO_DECIMAL = {
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CNY",
    "COP",
    "CRC",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "ISK",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "STD",
    "SZL",
    "THB",
    "TJS",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "UYU",
    "UZS",
    "WST",
    "XCD",
    "YER",
    "ZAR",
    "ZMW",
}
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 2 for c in TWO_DECIMAL},
    **{c: 0 for c in ZERO_DECIMAL},
    **{c: 3 for c in THREE_DECIMAL},
}


class MoneyError(ValueError):
    pass


def is_known_currency(currency: str) -> bool:
    return isinstance(currency, str) and currency.upper() in CURRENCY_EXPONENTS


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency.upper()]
    except (KeyError, AttributeError):
        raise MoneyError(f"unknown currency {quote(currency)}; use an ISO 4217 code such as USD") from None


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


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
    """Round once, half-up, to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def fits_minor_unit(amount: Decimal, currency: str) -> bool:
    return amount == amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str) -> int:
    if not fits_minor_unit(amount, currency):
        raise MoneyError(f"{amount} {currency} is finer than the currency's minor unit; round it first")
    return int(amount.scaleb(exponent(currency)))


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-exponent(currency)).quantize(minor_unit(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    digits = exponent(currency)
    return f"{quantize(amount, currency):,.{digits}f}"


def format_money(amount: Decimal, currency: str) -> str:
    return f"{currency.upper()} {format_amount(amount, currency)}"
