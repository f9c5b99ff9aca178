"""Bounds on what enters billctl (DESIGN.md invariant 13), pure: money and unit values that fit
their storage with room for a year of usage, text that fits its column, echoes of user input that
stay readable.

Why these numbers. Invoice and line amounts are stored as integer minor units in BigInteger
columns: at most 2^63 - 1 ~ 9.22e18. One invoice holds at most 13 periods of charges (the period
itself and up to ``billing.adjustment_lookback_months`` = 12 earlier ones re-priced as adjustments),
so the budget is sized for a year of usage plus a month:

- usage: ``YEAR_UNITS`` (10^12 weighted units a year, ~32,000 a second all year) x
  ``MAX_UNIT_PRICE_MINOR`` (10^6 minor units a unit) = 10^18 minor units;
- fixed amounts: 13 periods x (base fee + minimum + ``MAX_TIERS`` flat fees) x
  ``MAX_AMOUNT_MINOR`` (10^13) = 13 x 102 x 10^13 ~ 1.3e16 minor units;
- tax at most 100 % doubles the sum: 2 x (1e18 + 1.3e16) ~ 2.03e18, still 4.5x below 2^63.

So every value a plan, a discount or a tenant may hold is bounded here, and an invoice that
nevertheless comes out above ``MAX_STORED_MINOR`` (usage far beyond a year's room) is refused for
that tenant alone at finalize, never written and never stopping the other tenants' close.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

MAX_STORED_MINOR = 2**63 - 1  # BigInteger (invoice totals, line amounts)
YEAR_UNITS = 10**12  # weighted units a tenant may use in a year, the room the money bounds leave
MAX_AMOUNT_MINOR = 10**13  # base_fee, minimum, flat_fee, package_price, a fixed discount
MAX_UNIT_PRICE_MINOR = 10**6  # unit_price (per unit, per tier); package_price / package_size
MAX_UNITS = 10**15  # included_units, up_to, package_size (a count of units)
MAX_WEIGHT = 10**6  # an endpoint weight (weighted units = calls x weight)
MAX_TIERS = 100
MAX_DECIMALS = 12  # decimal places of a price or weight: 0.000000000001 (exact products stay < 28 digits)
MAX_TAX_DECIMALS = 4  # 8.2500 %

# text columns (db/models.py), checked where the text enters
TENANT_NAME = 200
EMAIL = 320
EXTERNAL_ID = 200
PLAN_DESCRIPTION = 500
DISCOUNT_DESCRIPTION = 200
REASON = 500
ACTOR = 200
ENDPOINT = 200  # event endpoint and plan weight keys (usage_bucket.endpoint)

ECHO = 60  # characters of user input repeated in a message


def quote(value: object, limit: int = ECHO) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters: a 10,000-character key is not
    echoed back in full."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str | bytes) else ""
    return f"{text[: limit - 1]}…{size}"


def has_control(text: str) -> bool:
    """Control characters (C0, DEL, C1, Unicode format/line/paragraph separators), and lone
    surrogates (what Python makes of bytes that are not UTF-8 in an argument or a variable)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


def is_utf8(text: str) -> bool:
    """False for a string holding lone surrogates: it cannot be stored, sent or printed as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_problem(value: object, field: str, max_len: int, *, required: bool = False) -> str | None:
    """Why ``value`` cannot be stored in a text column of ``max_len`` characters (None: it can)."""
    if not isinstance(value, str):
        return f"{field}: must be text"
    if required and not value.strip():
        return f"{field}: must not be empty"
    if len(value) > max_len:
        return f"{field}: {len(value):,} characters is too long (at most {max_len}); shorten it"
    if has_control(value):
        return f"{field}: {quote(value)} contains control characters; remove them"
    return None


def minor_limit(limit_minor: int, exponent: int) -> Decimal:
    """A limit in minor units as an amount of the currency (10^13 minor USD = 100,000,000,000.00)."""
    return Decimal(limit_minor).scaleb(-exponent)


def decimals(number: Decimal) -> int:
    """Significant decimal places of a finite ``number``: 2 for 1.25 and for 1.2500, 0 for 12 and 1E+3."""
    _, digits, exp = number.as_tuple()
    assert isinstance(exp, int), "finite numbers only"
    if not any(digits):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exp + trailing))
