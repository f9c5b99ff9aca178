"""Guardrails of the monthly close: hold rules and the zero-usage signal (pure)."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billctl.core.guardrails import HoldRules, hold_reason, usage_dropped


def test_limit_per_currency_in_minor_units():
    rules = HoldRules.parse("USD=100,KRW=150000,BHD=10.5", "0")
    assert rules.above == {"USD": 10000, "KRW": 150000, "BHD": 10500}
    assert hold_reason(10000, "USD", None, rules) is None  # at the limit: fine
    assert "above the limit USD 100.00" in hold_reason(10001, "USD", None, rules)
    assert hold_reason(10**9, "EUR", None, rules) is None  # no limit for EUR
    assert "KRW 150,001" in hold_reason(150001, "KRW", None, rules)


def test_multiple_of_the_previous_invoice():
    rules = HoldRules.parse("", "5")
    assert hold_reason(5000, "USD", 1000, rules) is None  # exactly 5x: fine
    reason = hold_reason(5001, "USD", 1000, rules)
    assert "5.0x the previous invoice (USD 10.00" in reason
    assert hold_reason(10**9, "USD", None, rules) is None  # no history: nothing to compare
    assert hold_reason(10**9, "USD", 0, rules) is None
    assert hold_reason(10**9, "USD", 1, HoldRules.parse("", "0")) is None  # 0 turns it off


@given(st.integers(0, 10**12), st.integers(1, 10**9), st.decimals(min_value=1, max_value=100, places=2))
def test_held_exactly_when_above_the_multiple(total, previous, multiple):
    reason = hold_reason(total, "USD", previous, HoldRules({}, Decimal(multiple)))
    assert (reason is not None) == (Decimal(total) > Decimal(multiple) * previous)


def test_usage_dropped():
    assert usage_dropped(0, 1000, 1000)
    assert not usage_dropped(0, 999, 1000)
    assert not usage_dropped(1, 10**6, 1000)
    assert not usage_dropped(0, 10**6, 0)
