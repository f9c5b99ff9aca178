"""Stripe's amount rules per currency (docs.stripe.com/currencies), kept apart from the resources.

FakeStripe's own copy of the facts, written from Stripe's page and not from billctl's table, so a
test pushing through FakeStripe checks billctl's table against an independent one:

- zero-decimal currencies: API amounts are whole units (``500`` is ¥500);
- three-decimal currencies (BHD JOD KWD OMR TND): amounts in thousandths whose last digit must be 0;
- ISK and UGX ("special cases"): effectively zero-decimal, but the API keeps them two-decimal, so an
  amount must be divisible by 100 (``500`` is 5 ISK); Stripe answers anything else with
  ``invalid_charge_amount_no_decimal_compatible``;
- HUF and TWD: zero-decimal for payouts only, charges take two decimals (nothing to enforce here);
- everything else: two decimals.
"""

from __future__ import annotations

from decimal import Decimal

from .validation import ParamError

# Stripe's zero-decimal list also names ugx, a special case below
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
                          "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
WHOLE_UNITS_IN_TWO_DECIMALS = frozenset({"isk", "ugx"})


def api_exponent(currency: str) -> int:
    """Decimal places of Stripe API amounts in ``currency``."""
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def major(amount: int, currency: str) -> Decimal:
    """A Stripe API amount as a Decimal of the currency's major unit (500 ISK -> 5.00)."""
    return Decimal(int(amount)).scaleb(-api_exponent(currency))


def check_amount(amount: int, currency: str, param: str = "amount") -> None:
    """Refuse an amount Stripe cannot charge in ``currency``, with Stripe's error."""
    currency = currency.lower()
    if currency in THREE_DECIMAL and amount % 10:
        raise ParamError(
            f"Invalid amount: {amount}. Amounts in {currency.upper()} must be rounded to the nearest ten "
            "(the last digit must be 0) to be compatible with Stripe's payment partners. "
            "See https://stripe.com/docs/currencies#three-decimal for more information.",
            param=param,
            code="invalid_charge_amount",
        )
    if currency in WHOLE_UNITS_IN_TWO_DECIMALS and amount % 100:
        raise ParamError(
            f"Invalid amount. Currency {currency.upper()} has become effectively zero-decimal and charged amounts "
            "must be evenly divisible by 100. See https://stripe.com/docs/currencies#special-cases for more "
            "information.",
            param=param,
            code="invalid_charge_amount_no_decimal_compatible",
        )


def step(currency: str) -> int:
    """The smallest chargeable step of API amounts in ``currency`` (1, 10 or 100)."""
    currency = currency.lower()
    if currency in THREE_DECIMAL:
        return 10
    return 100 if currency in WHOLE_UNITS_IN_TWO_DECIMALS else 1
