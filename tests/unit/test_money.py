from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billctl.core.money import (
    MoneyError,
    exponent,
    fits_minor_unit,
    format_money,
    from_minor,
    parse_decimal,
    quantize,
    to_minor,
)


@pytest.mark.parametrize("currency, digits", [("USD", 2), ("usd", 2), ("KRW", 0), ("JPY", 0), ("BHD", 3), ("EUR", 2)])
def test_exponents_follow_stripe(currency, digits):
    assert exponent(currency) == digits


def test_unknown_currency():
    with pytest.raises(MoneyError, match="unknown currency 'XYZ'"):
        exponent("XYZ")


@pytest.mark.parametrize(
    "amount, currency, expected",
    [
        ("0.005", "USD", "0.01"),
        ("0.0049", "USD", "0.00"),
        ("-0.005", "USD", "-0.01"),
        ("2.5", "KRW", "3"),
        ("2.4999", "KRW", "2"),
        ("0.0005", "BHD", "0.001"),
        ("1.2344", "BHD", "1.234"),
    ],
)
def test_half_up_rounding(amount, currency, expected):
    assert quantize(Decimal(amount), currency) == Decimal(expected)


def test_minor_units_round_trip_and_refuse_fractions():
    assert to_minor(Decimal("44.00"), "USD") == 4400
    assert to_minor(Decimal("25000"), "KRW") == 25000
    assert to_minor(Decimal("1.234"), "BHD") == 1234
    assert from_minor(1234, "BHD") == Decimal("1.234")
    assert str(from_minor(4400, "USD")) == "44.00"
    with pytest.raises(MoneyError):
        to_minor(Decimal("0.001"), "USD")
    assert not fits_minor_unit(Decimal("100.5"), "KRW")


def test_parse_decimal_refuses_floats_with_the_fix():
    assert parse_decimal("29.00", field="base_fee") == Decimal("29.00")
    assert parse_decimal(3, field="x") == Decimal(3)
    with pytest.raises(MoneyError, match='base_fee: write money as a string, e.g. base_fee = "29.0"'):
        parse_decimal(29.0, field="base_fee")
    for bad in ("abc", "NaN", "Infinity", True, None):
        with pytest.raises(MoneyError):
            parse_decimal(bad, field="x")


def test_format():
    assert format_money(Decimal("1234.5"), "USD") == "USD 1,234.50"
    assert format_money(Decimal("82500"), "KRW") == "KRW 82,500"


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["USD", "KRW", "BHD", "JPY", "EUR"]))
def test_minor_round_trip_property(minor, currency):
    assert to_minor(from_minor(minor, currency), currency) == minor
