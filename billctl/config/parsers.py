"""Value parsers for the settings table: each takes what the TOML file, the environment or a flag
gave and returns the typed value, or raises ``ValueError`` saying what is wrong (the loader adds the
setting's name and where the value came from)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from billctl.core.bounds import quote


def int_in(*allowed: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = integer(value)
        if number not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return number

    return parse


def integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,30}", value.strip()):
        return int(value)
    raise ValueError("must be an integer")


def int_range(low: int, high: int) -> Callable[[Any], int]:
    """An integer in [low, high]: every count, size and duration has a sane upper bound (a
    duration of 10^20 seconds would overflow the date arithmetic that uses it)."""

    def parse(value: Any) -> int:
        number = integer(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low:,} and {high:,}")
        return number

    return parse


def short_text(max_len: int) -> Callable[[Any], str]:
    """A string of at most ``max_len`` characters without control characters."""

    def parse(value: Any) -> str:
        text = string(value)
        if len(text) > max_len:
            raise ValueError(f"{len(text):,} characters is too long (at most {max_len})")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise ValueError("must not contain control characters")
        return text

    return parse


def status_ranges(value: Any) -> str:
    text = string(value).replace(" ", "")
    for part in text.split(","):
        if not re.fullmatch(r"[1-5]\d\d(-[1-5]\d\d)?", part):
            raise ValueError(f"{part!r} is not a status code or range such as 200-299")
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            raise ValueError(f"range {part!r} is empty")
    return text


def multiple(value: Any) -> str:
    """A non-negative multiple, at most 1,000, at most 4 decimal places (a decimal string)."""
    from decimal import Decimal, InvalidOperation

    from billctl.core.bounds import decimals

    if isinstance(value, float):
        raise ValueError('write it as a string, e.g. "5" (floats are inexact)')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a number written as a string, e.g. "5"')
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{quote(text)} is not a number") from None
    if not number.is_finite() or not 0 <= number <= 1000 or decimals(number) > 4:
        raise ValueError("must be a number from 0 to 1000 with at most 4 decimal places")
    return text


def amounts(value: Any) -> str:
    """'USD=10000,EUR=9000': a money amount per currency, each within the bounds of a plan amount."""
    from decimal import Decimal, InvalidOperation

    from billctl.core.bounds import MAX_AMOUNT_MINOR, minor_limit
    from billctl.core.money import exponent, fits_minor_unit, is_known_currency

    text = string(value).replace(" ", "")
    for part in filter(None, text.split(",")):
        code, sep, amount = part.partition("=")
        if not sep or not is_known_currency(code.upper()):
            raise ValueError(f"{quote(part)}: write CURRENCY=AMOUNT, e.g. USD=10000")
        try:
            number = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"{quote(part)}: {quote(amount)} is not an amount") from None
        limit = minor_limit(MAX_AMOUNT_MINOR, exponent(code))
        if not number.is_finite() or not 0 < number <= limit:
            raise ValueError(f"{quote(part)}: the amount must be above 0 and at most {limit:,}")
        if not fits_minor_unit(number, code):
            raise ValueError(f"{quote(part)}: {amount} is finer than {code.upper()} allows")
    return text


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("must be true or false")


def timezone(value: Any) -> str:
    from billctl.core.periods import PeriodError, validate_timezone

    try:
        return validate_timezone(string(value))
    except PeriodError as exc:
        raise ValueError(str(exc)) from None


def currency(value: Any) -> str:
    from billctl.core.money import is_known_currency

    code = string(value).upper()
    if not is_known_currency(code):
        raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as USD")
    return code


def number_pattern(value: Any) -> str:
    pattern = string(value)
    try:
        longest = pattern.format(period="2026-10", seq=10**12, year=2026, month="10")
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        hint = "placeholders are {period}, {year}, {month}, {seq}"
        raise ValueError(f"invalid pattern ({str(exc)[:80]}); {hint}") from None
    if "{seq" not in pattern:
        raise ValueError("must contain {seq} (e.g. {seq:06d}) so numbers are unique")
    if len(longest) > 64:  # invoice.number is 64 characters
        raise ValueError(f"gives numbers of {len(longest)} characters; invoice numbers hold at most 64")
    return pattern


def output_format(value: Any) -> str:
    text = string(value)
    if text not in {"table", "json", "csv"}:
        raise ValueError("must be table, json or csv")
    return text


def stripe_rate(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of requests per second") from None
    if not 0 < rate <= 1000:
        raise ValueError("must be above 0 and at most 1000")
    return rate


def collection_method(value: Any) -> str:
    text = string(value)
    if text not in {"charge_automatically", "send_invoice"}:
        raise ValueError("must be charge_automatically or send_invoice")
    return text


def http_base(value: Any) -> str:
    text = string(value).rstrip("/")
    if not re.fullmatch(r"https?://[^/\s]+", text):
        raise ValueError("must be a base address such as https://api.stripe.com (no path)")
    return text
