"""Rating: DESIGN.md's worked examples, tier boundaries, currencies, and properties of money."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.core.money import quantize
from billctl.core.plans import parse_plan
from billctl.core.rating import rate, usage_from_rows
from billctl.core.types import Adjustment, Discount, Segment

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
TIERS = [{"up_to": 10000, "unit_price": "0.0001"}, {"unit_price": "0.00005"}]


def plan(price, currency="USD", **extra):
    return parse_plan({"name": "p", "currency": currency, "price": price, **extra})


def total(p, usage, **kw):
    return rate(currency=p.currency, segments=[Segment(START, END, p, usage)], **kw).total


# -- DESIGN.md worked examples
def test_example_base_included_per_unit():
    p = plan({"model": "per_unit", "unit_price": "0.001"}, base_fee="29.00", included_units=10000)
    assert total(p, {"*": 25000}) == Decimal("44.00")


def test_example_graduated():
    assert total(plan({"model": "graduated", "tiers": TIERS}), {"*": 25000}) == Decimal("1.75")


def test_example_volume():
    assert total(plan({"model": "volume", "tiers": TIERS}), {"*": 25000}) == Decimal("1.25")


def test_example_package():
    assert total(plan({"model": "package", "package_size": 1000, "package_price": "0.50"}), {"*": 2500}) == Decimal(
        "1.50"
    )


def test_example_weights():
    p = plan({"model": "per_unit", "unit_price": "0.001"}, weights={"/v1/ocr": 3})
    draft = rate(currency="USD", segments=[Segment(START, END, p, {"/v1/ocr": 1000, "/v1/search": 5000})])
    assert draft.total == Decimal("8.00")
    detail = draft.lines[0].detail
    assert detail["weighted_units"] == "8000" and detail["by_endpoint"]["/v1/ocr"]["weight"] == "3"


def test_example_within_included():
    p = plan({"model": "per_unit", "unit_price": "0.001"}, base_fee="29.00", included_units=10000)
    draft = rate(currency="USD", segments=[Segment(START, END, p, {"*": 9000})])
    assert draft.total == Decimal("29.00")
    usage = [x for x in draft.lines if x.kind == "usage"]
    assert len(usage) == 1 and usage[0].amount == 0 and "9,000 of 10,000 included units used" in usage[0].description


# -- tier boundaries
@pytest.mark.parametrize(
    "units, graduated, volume",
    [
        (10000, "1.00", "1.00"),  # exactly at up_to: first tier
        (10001, "1.00005", "0.50005"),  # one above: the extra unit in tier 2 / all units at tier 2
    ],
)
def test_tier_boundaries(units, graduated, volume):
    g = rate(
        currency="USD",
        segments=[Segment(START, END, plan({"model": "graduated", "tiers": TIERS}), {"*": units})],
    )
    v = rate(
        currency="USD",
        segments=[Segment(START, END, plan({"model": "volume", "tiers": TIERS}), {"*": units})],
    )
    assert sum(x.unrounded for x in g.lines) == Decimal(graduated)
    assert sum(x.unrounded for x in v.lines) == Decimal(volume)
    assert len([x for x in g.lines if x.kind == "usage"]) == (1 if units == 10000 else 2)


def test_graduated_flat_fee_charged_when_tier_reached():
    p = plan(
        {
            "model": "graduated",
            "tiers": [
                {"up_to": 10, "unit_price": "1", "flat_fee": "5"},
                {"unit_price": "0.5", "flat_fee": "100"},
            ],
        }
    )
    assert total(p, {"*": 10}) == Decimal("15.00")
    assert total(p, {"*": 11}) == Decimal("115.50")


# -- currencies and rounding
def test_krw_and_bhd_rounding():
    krw = plan({"model": "per_unit", "unit_price": "0.5"}, currency="KRW")
    assert total(krw, {"*": 3}) == Decimal("2")  # 1.5 -> 2, half up
    # three-decimal currencies are billed to 0.01: Stripe wants their amounts to end in 0
    bhd = plan({"model": "per_unit", "unit_price": "0.0005"}, currency="BHD")
    assert total(bhd, {"*": 3}) == Decimal("0.000")  # 0.0015 -> 0.00
    assert total(bhd, {"*": 10}) == Decimal("0.010")  # 0.005 -> 0.01
    draft = rate(currency="BHD", segments=[Segment(START, END, bhd, {"*": 1001})], tax_rate=Decimal("10"))
    assert draft.subtotal == Decimal("0.500") and draft.tax == Decimal("0.050")  # 0.5005 -> 0.50


def test_whole_unit_currencies_round_to_whole_units():
    """ISK and UGX: Stripe charges whole units only (ISK is stored with two decimals, UGX with none)."""
    for currency in ("ISK", "UGX"):
        p = plan({"model": "per_unit", "unit_price": "0.25"}, currency=currency)
        assert total(p, {"*": 10}) == Decimal("3")  # 2.50 -> 3, half up
        draft = rate(currency=currency, segments=[Segment(START, END, p, {"*": 13})], tax_rate=Decimal("24"))
        assert draft.subtotal == Decimal("3") and draft.tax == Decimal("1")  # 3.25 -> 3; 0.72 -> 1


def test_each_line_rounded_once_then_summed_then_tax_once():
    p = plan({"model": "graduated", "tiers": [{"up_to": 1, "unit_price": "0.005"}, {"unit_price": "0.005"}]})
    draft = rate(currency="USD", segments=[Segment(START, END, p, {"*": 2})], tax_rate=Decimal("50"))
    assert [x.amount for x in draft.lines if x.kind == "usage"] == [Decimal("0.01"), Decimal("0.01")]
    assert draft.subtotal == Decimal("0.02") and draft.tax == Decimal("0.01")


def test_minimum_discounts_and_cap():
    p = plan({"model": "per_unit", "unit_price": "0.01"}, minimum="50.00")
    draft = rate(
        currency="USD",
        segments=[Segment(START, END, p, {"*": 1000})],
        discounts=[Discount("percent", Decimal("10")), Discount("fixed", Decimal("100"))],
    )
    kinds = [x.kind for x in draft.lines]
    assert kinds == ["usage", "minimum", "discount", "discount"]
    assert draft.lines[1].amount == Decimal("40.00")
    assert draft.lines[2].amount == Decimal("-5.00")
    assert draft.lines[3].amount == Decimal("-45.00") and draft.lines[3].detail["capped"] is True
    assert draft.total == 0


def test_segments_prorate_base_and_included_units():
    p = plan({"model": "per_unit", "unit_price": "1"}, base_fee="31.00", included_units=31)
    mid = datetime(2026, 10, 11, tzinfo=UTC)
    first = Segment(START, mid, p, {"*": 10}, fraction=Decimal(10) / Decimal(31))
    second = Segment(mid, END, p, {"*": 21}, fraction=Decimal(21) / Decimal(31))
    draft = rate(currency="USD", segments=[second, first])
    base = [x.amount for x in draft.lines if x.kind == "base"]
    assert base == [Decimal("10.00"), Decimal("21.00")]
    assert draft.total == Decimal("31.00")  # included units prorated 10 + 21: nothing billable


def test_adjustment_lines_and_currency_mismatch():
    p = plan({"model": "per_unit", "unit_price": "1"})
    draft = rate(
        currency="USD",
        segments=[Segment(START, END, p, {})],
        adjustments=[Adjustment("2026-09", Decimal("2.50"), "Adjustment for 2026-09")],
    )
    assert draft.lines[-1].kind == "adjustment" and draft.total == Decimal("2.50")
    with pytest.raises(ValueError, match="priced in USD"):
        rate(currency="EUR", segments=[Segment(START, END, p, {})])


# -- properties
currencies = st.sampled_from(["USD", "KRW", "BHD"])
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def plans(draw):
    currency = draw(currencies)
    kind = draw(st.sampled_from(["per_unit", "graduated", "volume", "package"]))
    if kind == "per_unit":
        price = {"model": kind, "unit_price": str(draw(prices))}
    elif kind == "package":
        price = {
            "model": kind,
            "package_size": draw(st.integers(1, 5000)),
            "package_price": str(quantize(draw(prices), currency)),
        }
    else:
        bounds = sorted(draw(st.lists(st.integers(1, 10**6), min_size=0, max_size=3, unique=True)))
        price = {
            "model": kind,
            "tiers": [{"up_to": b, "unit_price": str(draw(prices))} for b in bounds]
            + [{"unit_price": str(draw(prices))}],
        }
    return parse_plan(
        {
            "name": "p",
            "currency": currency,
            "base_fee": str(quantize(draw(prices), currency)),
            "included_units": draw(st.integers(0, 10**5)),
            "price": price,
            "weights": {"/ocr": draw(st.integers(1, 5))},
        }
    )


rows = st.lists(st.tuples(st.sampled_from(["/a", "/b", "/ocr", "*"]), st.integers(0, 10**6)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(plans(), rows, st.decimals(min_value=0, max_value=30, places=2, allow_nan=False))
def test_total_is_sum_of_lines_and_never_negative_without_discount(p, usage_rows, tax):
    draft = rate(currency=p.currency, segments=[Segment(START, END, p, usage_from_rows(usage_rows))], tax_rate=tax)
    assert draft.total == sum(x.amount for x in draft.lines)
    assert draft.subtotal == sum(x.amount for x in draft.lines if x.kind != "tax")
    assert all(x.amount >= 0 for x in draft.lines)
    assert all(x.amount == quantize(x.unrounded, p.currency) for x in draft.lines)


@settings(max_examples=150, deadline=None)
@given(plans(), rows, st.randoms())
def test_order_of_usage_rows_does_not_matter(p, usage_rows, rnd):
    shuffled = list(usage_rows)
    rnd.shuffle(shuffled)
    a = rate(currency=p.currency, segments=[Segment(START, END, p, usage_from_rows(usage_rows))])
    b = rate(currency=p.currency, segments=[Segment(START, END, p, usage_from_rows(shuffled))])
    assert a == b


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10**6), st.integers(0, 10**6), prices, prices)
def test_graduated_and_volume_agree_inside_first_tier(bound, units, first, second):
    units = min(units, bound)
    tiers = [{"up_to": bound, "unit_price": str(first)}, {"unit_price": str(second)}]
    g = total(plan({"model": "graduated", "tiers": tiers}), {"*": units})
    v = total(plan({"model": "volume", "tiers": tiers}), {"*": units})
    assert g == v


@settings(max_examples=100, deadline=None)
@given(plans(), rows, st.lists(st.tuples(st.sampled_from(["percent", "fixed"]), st.integers(1, 100)), max_size=3))
def test_discounts_never_make_subtotal_negative(p, usage_rows, discounts):
    draft = rate(
        currency=p.currency,
        segments=[Segment(START, END, p, usage_from_rows(usage_rows))],
        discounts=[Discount(kind, Decimal(v)) for kind, v in discounts],
    )
    assert draft.subtotal >= 0 and draft.total == sum(x.amount for x in draft.lines)


def test_usage_from_rows_sums():
    rows_ = [("/a", 1), ("/b", 2), ("/a", 3)]
    random.shuffle(rows_)
    assert usage_from_rows(rows_) == {"/a": 4, "/b": 2}
