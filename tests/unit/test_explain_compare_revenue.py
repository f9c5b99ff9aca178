"""The pure helpers behind explain, recompute and report revenue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billctl.core import compare
from billctl.core.explain import Activity, StoredLine, check_totals, explain_lines, num, segment_dates
from billctl.core.rating import rate
from billctl.core.revenue import InvoiceSummary, bar, change_percent, revenue
from billctl.core.types import Discount, Plan, PriceModel, Segment, Tier

D = Decimal
OCT = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


def _plan(**kw) -> Plan:
    spec = {
        "code": "g",
        "currency": "USD",
        "base_fee": D("10.00"),
        "included_units": 1000,
        "model": PriceModel("graduated", tiers=(Tier(5000, D("0.001")), Tier(None, D("0.0005"), D("1.00")))),
        "weights": {"/ocr": D(3)},
    }
    return Plan(**{**spec, **kw})


def _stored(draft) -> list[StoredLine]:
    from billctl.core.invoice import jsonable as _jsonable

    return [
        StoredLine(i, x.kind, x.description, x.quantity, x.unit_price, x.amount, x.unrounded, _jsonable(dict(x.detail)))
        for i, x in enumerate(draft.lines, start=1)
    ]


def _inputs(plan: Plan, usage: dict) -> dict:
    from billctl.core.plans import plan_to_dict

    return {
        "timezone": "UTC",
        "segments": [
            {
                "start": OCT[0].isoformat(),
                "end": OCT[1].isoformat(),
                "fraction": "1",
                "plan": {"id": 1, "code": plan.code, "version": plan.version, "definition": plan_to_dict(plan)},
                "usage": usage,
            }
        ],
    }


def test_explain_steps_follow_the_rating_order():
    plan = _plan()
    usage = {"/ocr": 1000, "/search": 4001}
    draft = rate(
        currency="USD",
        segments=[Segment(OCT[0], OCT[1], plan, usage)],
        discounts=[Discount("percent", D("10"), "Friends", 7)],
        tax_rate=D("7.5"),
    )
    lines = _stored(draft)
    activity = [{"/ocr": Activity(1000, 10, 2, 1_791_000_000, 1_791_003_600)}]
    explained = explain_lines(_inputs(plan, usage), lines, "USD", activity)
    labels = [[s.label for s in x.steps] for x in explained]
    assert labels[0] == ["plan", "base fee", "rounding"]
    assert labels[1] == [
        "plan",
        "usage /ocr",
        "usage /search",
        "weighted units",
        "included units",
        "billable units",
        "tier 1 slice (1–5,000)",
        "rounding",
    ]
    assert labels[2] == ["tier 2 slice (5,001–∞)", "rounding"]
    assert labels[3] == ["discount", "applied", "rounding"]
    assert labels[4] == ["tax", "rounding"]
    steps = {s.label: s.value for s in explained[1].steps}
    assert steps["usage /ocr"].startswith("1,000 units from 10 event(s) in 2 buckets, ")
    assert steps["usage /search"] == "4,001 units; weight 1 → 4,001 weighted"  # no activity given for it
    assert steps["billable units"] == "max(0, 7,001 − 1,000) = 6,001"
    assert explained[2].steps[0].value == "1,001 units × 0.0005 + flat fee 1.00 = 1.5005"
    assert explained[2].rounding["rounded"] == "1.50" and explained[2].rounding["exact"] is False
    assert check_totals(lines, draft.subtotal, draft.tax, draft.total, "USD") == []
    broken = [*lines[:-1], StoredLine(9, "tax", "Tax", D(1), None, D("9.99"), D("9.99"), {})]
    assert check_totals(broken, draft.subtotal, draft.tax, draft.total, "USD")


def test_num_and_dates():
    assert num("12345") == "12,345"
    assert num("0.50") == "0.50"
    assert num("0.48387096774193548387") == "0.4838709677…"
    assert num("0.125", 2) == "0.12…"
    assert segment_dates("2026-09-30T15:00:00+00:00", "2026-10-31T15:00:00+00:00", "Asia/Seoul") == (
        "2026-10-01 – 2026-10-31 (Asia/Seoul)"
    )


def test_line_keys_match_lines_whose_quantities_changed():
    assert compare.line_key("usage", {"start": "s", "model": "per_unit"}) == "usage · s"
    assert compare.line_key("usage", {"start": "s", "model": "graduated", "tier": 1}) == "usage · s"
    assert compare.line_key("usage", {"start": "s", "model": "graduated", "tier": 2}) == "usage · s · tier 2"
    assert compare.line_key("usage", {"start": "s", "model": "volume", "tier": 3}) == "usage · s"
    assert compare.line_key("discount", {"discount_id": 4}) == "discount · discount 4"
    rows = compare.keyed([("tax", "tax", "Tax", D(1), 5), ("tax", "tax", "Tax", D(1), 6)])
    assert [r.key for r in rows] == ["tax", "tax #2"]


def test_diff_lines_statuses_and_order():
    R = compare.Row
    then = [R("a", "base", "A", D(1), 100), R("b", "usage", "B 10", D(10), 10), R("c", "discount", "C", D(1), -5)]
    now = [R("a", "base", "A", D(1), 100), R("b", "usage", "B 12", D(12), 12), R("d", "tax", "D", D(1), 2)]
    diffs = compare.diff_lines(then, now)
    assert [(d.key, d.status, d.delta_minor) for d in diffs] == [
        ("a", "same", 0),
        ("b", "changed", 2),
        ("c", "removed", 5),
        ("d", "added", 2),
    ]


def test_input_changes_and_proposals():
    plan = _plan()
    then = {**_inputs(plan, {"/search": 100}), "tax_rate": "0", "discounts": [], "currency": "USD"}
    assert compare.input_changes(then, then) == []
    late = {**then, "segments": [{**then["segments"][0], "usage": {"/search": 150}}]}
    reasons = compare.input_changes(then, late)
    assert reasons == ["usage changed: 100 → 150 units (+50, late usage)"]
    assert compare.propose("INV-1", 50, 55, reasons, "0.50 USD")["action"] == "adjustment"
    v2 = {**then, "segments": [{**then["segments"][0], "plan": {**then["segments"][0]["plan"], "version": 2}}]}
    v2["tax_rate"] = "5"
    reasons = compare.input_changes(then, v2)
    assert reasons == ["plan g changed: v1 → v2", "tax rate changed: 0 → 5"]
    assert compare.propose("INV-1", 10, 12, reasons, "0.10 USD")["action"] == "charge"
    assert compare.propose("INV-1", -10, -12, reasons, "0.10 USD")["action"] == "credit"
    assert compare.propose("INV-1", 0, 0, [], "0")["action"] == "none"


def test_revenue_groups_by_plan_and_currency_without_mixing_currencies():
    def inv(tenant, plan, currency, subtotal, tax=0):
        return InvoiceSummary(tenant, f"N-{tenant}", plan, currency, subtotal, tax, subtotal + tax)

    now = [inv("a", "pro", "USD", 5000, 500), inv("b", "pro", "USD", 3000), inv("c", "eu", "EUR", 9000)]
    before = [inv("a", "basic", "USD", 2000), inv("z", "basic", "USD", 1000)]
    report = revenue("2026-10", "2026-09", now, before, top=1)
    assert [(g.plan, g.currency, g.revenue_minor, g.previous_revenue_minor) for g in report.by_plan] == [
        ("eu", "EUR", 9000, 0),
        ("pro", "USD", 8000, 0),
        ("basic", "USD", 0, 3000),
    ]
    usd = next(g for g in report.by_currency if g.currency == "USD")
    assert (usd.revenue_minor, usd.tax_minor, usd.total_minor, usd.previous_revenue_minor) == (8000, 500, 8500, 3000)
    assert usd.change_percent == D("166.7")
    assert [i.tenant for i in report.gained] == ["b", "c"]
    assert [i.tenant for i in report.lost] == ["z"]
    assert [i.tenant for i in report.top] == ["c", "a"]  # the top one per currency
    assert change_percent(5, 0) is None


def test_bars():
    assert bar(0, 10) == "" and bar(5, 0) == ""
    assert bar(10, 10, 8) == "█" * 8
    assert bar(1, 16, 8) == "▌"
    assert len(bar(3, 10, 10)) == 3
