from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billctl.core.currencies import CURRENCIES
from billctl.core.money import (
    MoneyError,
    billing_unit,
    currency_problem,
    exponent,
    fits_minor_unit,
    format_money,
    from_minor,
    from_stripe_amount,
    parse_decimal,
    quantize,
    to_minor,
    to_stripe_amount,
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
        ("0.005", "BHD", "0.010"),  # Stripe wants three-decimal amounts to end in 0: billed to 0.01
        ("0.0049", "BHD", "0.000"),
        ("1.2345", "KWD", "1.230"),  # what billctl used to round to 1.235, which Stripe refuses
        ("1.235", "KWD", "1.240"),
        ("12.5", "ISK", "13.00"),  # Stripe charges ISK in whole krónur (two-decimal in the API)
        ("12.49", "ISK", "12.00"),
        ("12.5", "UGX", "13"),
        ("1.005", "HUF", "1.01"),  # HUF and TWD: whole units for payouts only; charges take two decimals
        ("1.005", "TWD", "1.01"),
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
    assert not fits_minor_unit(Decimal("1.235"), "KWD") and fits_minor_unit(Decimal("1.23"), "KWD")
    assert not fits_minor_unit(Decimal("10.50"), "ISK") and fits_minor_unit(Decimal("10"), "ISK")


@pytest.mark.parametrize(
    "minor, currency, sent",
    [(4400, "USD", 4400), (500, "JPY", 500), (1230, "KWD", 1230), (500, "ISK", 500), (5, "UGX", 500), (1, "HUF", 1)],
)
def test_amounts_sent_to_stripe(minor, currency, sent):
    assert to_stripe_amount(minor, currency) == sent
    assert from_stripe_amount(sent, currency) == from_minor(minor, currency)


@pytest.mark.parametrize("minor, currency", [(1235, "KWD"), (1, "BHD"), (550, "ISK"), (1, "ISK")])
def test_amounts_stripe_refuses_are_not_sent(minor, currency):
    with pytest.raises(MoneyError, match=f"cannot be charged by Stripe.*{currency}"):
        to_stripe_amount(minor, currency)


def test_currencies_stripe_does_not_take_are_refused_with_the_reason():
    assert currency_problem("usd") is None and currency_problem("KWD") is None
    for code in ("LYD", "IQD", "XYZ", "BTC", 7):
        assert "not a currency Stripe charges in" in str(currency_problem(code))


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=6),
    st.sampled_from(sorted(CURRENCIES)),
)
def test_every_rounded_amount_is_one_stripe_takes(amount, currency):
    """For every currency of the table: a line rounded once is stored exactly, Stripe accepts the amount
    sent, and reading Stripe's amount back gives the same money."""
    rounded = quantize(amount, currency)
    assert abs(rounded - amount) <= billing_unit(currency) / 2
    minor = to_minor(rounded, currency)
    sent = to_stripe_amount(minor, currency)
    assert sent % CURRENCIES[currency].stripe_step == 0
    assert from_stripe_amount(sent, currency) == rounded


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


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(sorted(CURRENCIES)))
def test_minor_round_trip_property(minor, currency):
    assert to_minor(from_minor(minor, currency), currency) == minor
