from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billctl.core.plans import PlanError, parse_plan, plan_to_dict


def base(**price):
    return {
        "name": "pro",
        "currency": "USD",
        "base_fee": "29.00",
        "included_units": 10000,
        "price": price or {"model": "per_unit", "unit_price": "0.001"},
    }


def problems(data):
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    return info.value.problems


def test_valid_plans_of_each_model():
    assert parse_plan(base()).model.unit_price == Decimal("0.001")
    graduated = parse_plan(base(model="graduated", tiers=[{"up_to": 10, "unit_price": "1"}, {"unit_price": "0.5"}]))
    assert graduated.model.tiers[0].up_to == 10 and graduated.model.tiers[1].up_to is None
    package = parse_plan(base(model="package", package_size=1000, package_price="0.50"))
    assert package.model.package_size == 1000


def test_every_problem_reported_at_once():
    data = {
        "name": "Bad Name",
        "currency": "USD",
        "base_fee": "-1",
        "inclded_units": 5,
        "price": {
            "model": "graduated",
            "tiers": [
                {"up_to": 100, "unit_price": "1"},
                {"up_to": 50, "unit_price": "-2"},
                {"up_to": 500, "unit_price": "1"},
            ],
        },
    }
    found = problems(data)
    text = "\n".join(found)
    assert len(found) >= 6, found
    assert "name:" in text and "base_fee: must not be negative" in text
    assert "inclded_units: unknown key; did you mean 'included_units'?" in text
    assert "price.tiers[1].up_to: must be greater than the previous tier's up_to (100)" in text
    assert "price.tiers[1].unit_price: must not be negative" in text
    assert "price.tiers[2].up_to: the last tier must be unbounded" in text


@pytest.mark.parametrize(
    "data, needle",
    [
        ({**base(), "currency": "XYZ"}, "currency"),
        ({**base(), "base_fee": 29.0}, "write money as a string"),
        ({**base(), "base_fee": "29.001"}, "finer than USD"),
        ({**base(), "currency": "KRW", "base_fee": "100.5"}, "finer than KRW"),
        (base(model="per_unit"), "price.unit_price: is required"),
        (base(model="volume", tiers=[]), "at least one tier"),
        (base(model="per_unit", unit_price="1", tiers=[]), "does not belong to the per_unit model"),
        (base(model="pakage"), "did you mean 'package'"),
        (base(model="package", package_size=0, package_price="1"), "package_size: must be at least 1"),
        ({**base(), "weights": {"/v1/ocr": 0}}, "weights./v1/ocr: must be greater than 0"),
        ({k: v for k, v in base().items() if k != "price"}, "price: is required"),
    ],
)
def test_single_problems(data, needle):
    assert any(needle in p for p in problems(data)), problems(data)


def test_unit_price_may_be_finer_than_minor_unit():
    assert parse_plan(base(model="per_unit", unit_price="0.00001")).model.unit_price == Decimal("0.00001")


money = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)


@given(
    money,
    st.integers(0, 10**6),
    st.lists(st.integers(1, 1000), min_size=1, max_size=4, unique=True),
    st.sampled_from(["graduated", "volume"]),
)
def test_round_trip(fee, included, bounds, kind):
    bounds = sorted(bounds)
    tiers = [{"up_to": b, "unit_price": "0.01"} for b in bounds] + [{"unit_price": "0.005", "flat_fee": "1.00"}]
    data = {
        "name": "x",
        "currency": "USD",
        "base_fee": str(fee),
        "included_units": included,
        "price": {"model": kind, "tiers": tiers},
        "weights": {"/v1/ocr": 3},
    }
    plan = parse_plan(data)
    assert parse_plan(plan_to_dict(plan)) == plan
