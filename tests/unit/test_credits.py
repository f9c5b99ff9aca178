"""Prepaid credits, the pure core: worked examples (the ones docs/how-to/prepaid-credits.md shows) and
properties of the ledger and the draw-down (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.core import credits as c
from billctl.core.money import from_minor
from billctl.errors import CreditsError

OCT_START = datetime(2026, 10, 1, tzinfo=UTC)
OCT_END = datetime(2026, 11, 1, tzinfo=UTC)
NOV_END = datetime(2026, 12, 1, tzinfo=UTC)
PROMO, PAID = c.CreditKind.PROMOTIONAL, c.CreditKind.PURCHASED


def grant(
    gid: int, amount: str, kind=PROMO, *, currency="USD", effective=OCT_START, expires=None, priority=50, reason=""
):
    return c.Grant(gid, currency, D(amount), kind, effective, expires, priority, reason)


def ledger(*grants: c.Grant) -> list[c.Entry]:
    return [c.grant_entry(g) for g in grants]


def apply(charges: str, rate: str, grants, entries, *, currency="USD", period_end=OCT_END) -> c.Application:
    return c.apply_credits(
        currency=currency, charges=D(charges), tax_rate=D(rate), grants=grants, entries=entries, period_end=period_end
    )


def draws(application: c.Application) -> dict[int, str]:
    return {d.grant_id: str(d.amount) for d in application.draws}


def record(application: c.Application, invoice_id: int, at=OCT_END) -> list[c.Entry]:
    return [c.Entry(d.grant_id, c.EntryKind.DRAW, -d.amount, at, invoice_id) for d in application.draws]


# ---------------------------------------------------------------------------------- worked examples


def test_promotional_credit_reduces_the_taxable_amount():
    """USD 100.00 of charges at 8.25 % tax with USD 30.00 of promotional credit: tax on 70.00."""
    g = grant(1, "30.00", PROMO, reason="sign-up bonus")
    a = apply("100.00", "8.25", [g], ledger(g))
    assert (a.promotional, a.taxable, a.tax, a.purchased, a.total) == (
        D("30.00"), D("70.00"), D("5.78"), D("0"), D("75.78"),
    )  # fmt: skip
    assert a.total == a.charges + a.tax - a.credits
    (line,) = c.credit_lines(a, {1: g})
    assert line.amount == D("-30.00") and line.before_tax
    assert line.description == "Promotional credit: sign-up bonus (grant 1)"


def test_purchased_credit_settles_the_amount_after_tax():
    """The same charges with USD 50.00 of purchased credit: tax on the full 100.00, then 50.00 paid."""
    g = grant(1, "50.00", PAID)
    a = apply("100.00", "8.25", [g], ledger(g))
    assert (a.promotional, a.taxable, a.tax, a.purchased, a.total) == (
        D("0"), D("100.00"), D("8.25"), D("50.00"), D("58.25"),
    )  # fmt: skip
    (line,) = c.credit_lines(a, {1: g})
    assert not line.before_tax and line.detail["applies"] == "after tax"


def test_promotional_then_purchased_on_one_invoice():
    promo, paid = grant(1, "30.00", PROMO), grant(2, "500.00", PAID)
    a = apply("100.00", "8.25", [paid, promo], ledger(promo, paid))
    assert [d.grant_id for d in a.draws] == [1, 2]  # promotional first, whatever the list order
    assert draws(a) == {1: "30.00", 2: "75.78"} and a.total == D("0.00")
    assert a.gross - a.credits == a.total


def test_two_grants_with_different_expiry_the_earlier_expiring_first():
    """Both promotional, USD 20.00 each: the one expiring in December is used before the one
    expiring in January, even though the later one has the better priority."""
    early = grant(1, "20.00", expires=datetime(2026, 12, 1, tzinfo=UTC), priority=90)
    late = grant(2, "20.00", expires=datetime(2027, 1, 1, tzinfo=UTC), priority=0)
    forever = grant(3, "20.00", priority=0)
    a = apply("30.00", "0", [forever, late, early], ledger(early, late, forever))
    assert draws(a) == {1: "20.00", 2: "10.00"} and a.total == D("0.00")


def test_priority_then_age_break_ties():
    a1 = grant(1, "10.00", priority=50, effective=datetime(2026, 10, 5, tzinfo=UTC))
    a2 = grant(2, "10.00", priority=50, effective=datetime(2026, 10, 2, tzinfo=UTC))
    a3 = grant(3, "10.00", priority=10, effective=datetime(2026, 10, 9, tzinfo=UTC))
    a = apply("25.00", "0", [a1, a2, a3], ledger(a1, a2, a3))
    assert [d.grant_id for d in a.draws] == [3, 2, 1] and draws(a) == {3: "10.00", 2: "10.00", 1: "5.00"}


def test_a_grant_that_expires_mid_period_is_not_used_and_is_written_off_at_the_close():
    mid = grant(1, "50.00", expires=datetime(2026, 10, 15, tzinfo=UTC))
    month_end = grant(2, "10.00", expires=OCT_END)  # expires as the month ends: still covers October
    entries = ledger(mid, month_end)
    a = apply("40.00", "0", [mid, month_end], entries)
    assert draws(a) == {2: "10.00"} and a.total == D("30.00")
    entries += record(a, invoice_id=7)
    written_off = c.expiries([mid, month_end], entries, OCT_END)
    assert [(e.grant_id, e.amount) for e in written_off] == [(1, D("50.00"))]  # grant 2 is used up
    entries += [c.Entry(e.grant_id, c.EntryKind.EXPIRY, -e.amount, OCT_END) for e in written_off]
    assert c.balance(entries) == 0 and c.check_ledger([mid, month_end], entries) == []


def test_expiry_keeps_grants_an_unfinalized_invoice_may_still_use():
    month_end = grant(1, "10.00", expires=OCT_END)
    assert c.expiries([month_end], ledger(month_end), OCT_END, keep=[1]) == []
    assert c.expiries([month_end], ledger(month_end), OCT_END)[0].amount == D("10.00")


def test_a_grant_effective_after_the_period_waits_for_the_next_invoice():
    nov = grant(1, "10.00", effective=OCT_END)
    assert apply("40.00", "0", [nov], ledger(nov)).credits == 0
    assert apply("40.00", "0", [nov], ledger(nov), period_end=NOV_END).credits == D("10.00")


def test_a_balance_smaller_than_the_invoice_is_used_up_and_never_goes_below_zero():
    g = grant(1, "25.00", PAID)
    entries = ledger(g)
    a = apply("44.00", "0", [g], entries)
    assert a.purchased == D("25.00") and a.total == D("19.00")
    entries += record(a, 1)
    assert c.balance(entries) == 0
    again = apply("44.00", "0", [g], entries, period_end=NOV_END)  # the next month: nothing left
    assert again.credits == 0 and again.total == D("44.00")


def test_zero_decimal_currency_jpy():
    """¥12,345 at 10 % tax, ¥1,000 promotional then ¥5,000 purchased: tax on ¥11,345 is ¥1,134.5,
    rounded once, half-up, to ¥1,135."""
    promo = grant(1, "1000", PROMO, currency="JPY")
    paid = grant(2, "5000", PAID, currency="JPY")
    a = apply("12345", "10", [promo, paid], ledger(promo, paid), currency="JPY")
    assert (a.taxable, a.tax, a.purchased, a.total) == (D("11345"), D("1135"), D("5000"), D("7480"))
    assert all(d.amount == d.amount.to_integral_value() for d in a.draws)


def test_nothing_is_drawn_for_a_negative_or_zero_subtotal():
    promo, paid = grant(1, "10.00"), grant(2, "10.00", PAID)
    a = apply("-5.00", "10", [promo, paid], ledger(promo, paid))
    assert a.credits == 0 and a.total == D("-5.50")
    assert apply("0.00", "10", [promo, paid], ledger(promo, paid)).credits == 0


def test_reversal_gives_back_to_the_same_grants_never_twice():
    promo, paid = grant(1, "30.00"), grant(2, "100.00", PAID)
    entries = ledger(promo, paid)
    a = apply("100.00", "10", [promo, paid], entries)
    entries += record(a, invoice_id=5)
    assert c.outstanding(entries, 5) == {1: D("30.00"), 2: D("77.00")}
    partial = c.reversals(entries, 5, D("80.00"))  # purchased (drawn last) first
    assert [(r.grant_id, r.amount) for r in partial] == [(2, D("77.00")), (1, D("3.00"))]
    entries += [c.Entry(r.grant_id, c.EntryKind.REVERSAL, r.amount, NOV_END, 5) for r in partial]
    rest = c.reversals(entries, 5)
    assert [(r.grant_id, r.amount) for r in rest] == [(1, D("27.00"))]
    entries += [c.Entry(r.grant_id, c.EntryKind.REVERSAL, r.amount, NOV_END, 5) for r in rest]
    assert c.reversals(entries, 5) == [] and c.reversals(entries, 5, D("10.00")) == []
    assert c.balance(entries) == D("130.00") and c.check_ledger([promo, paid], entries) == []


def test_validation_names_the_field():
    def refuse(field: str, **kw):
        args = dict(
            amount=D("10.00"), currency="USD", tenant_currency="USD", kind="promotional",
            effective_at=OCT_START, expires_at=None, priority=50,
        )  # fmt: skip
        with pytest.raises(CreditsError) as info:
            c.validate_grant(**{**args, **kw})
        assert info.value.field == field, info.value

    refuse("amount", amount=D("0"))
    refuse("amount", amount=D("-1"))
    refuse("amount", amount=D("0.001"))
    refuse("amount", amount=D("1E+20"))
    refuse("currency", currency="EUR")
    refuse("kind", kind="free")
    refuse("expires", expires_at=OCT_START)
    refuse("expires", expires_at=OCT_START - timedelta(days=1))
    refuse("priority", priority=101)
    assert c.validate_grant(
        amount=D("10"), currency="jpy", tenant_currency="JPY", kind="purchased",
        effective_at=OCT_START, expires_at=OCT_END, priority=0,
    ) == PAID  # fmt: skip


def test_burn_down_projects_the_run_out_date():
    g = grant(1, "300.00", PAID, effective=datetime(2026, 7, 1, tzinfo=UTC))
    entries = ledger(g)
    for month, at in enumerate((datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)), start=1):
        entries.append(c.Entry(1, c.EntryKind.DRAW, D("-90.00"), at, month))
    now = datetime(2026, 10, 20, tzinfo=UTC)
    b = c.burn_down(
        [g], entries, currency="USD", now=now, period_start=OCT_START, period_end=OCT_END, window_days=60,
        threshold=D("100.00"),
    )  # fmt: skip
    assert b.available == D("120.00") and b.consumed == D("180.00") and b.per_day == D("3")
    assert b.run_out_on == datetime(2026, 11, 29, tzinfo=UTC).date()  # 120 / 3 = 40 days after October 20th
    assert not b.runs_out_before_period_end and not b.below_threshold and not b.alert
    faster = c.burn_down(
        [g], entries, currency="USD", now=now, period_start=OCT_START, period_end=OCT_END, window_days=60,
        accrued=D("190.00"),  # 190 in 19 days: 10 a day, 120 lasts 12 days, past October 31st
    )  # fmt: skip
    assert faster.per_day == D("10") and not faster.runs_out_before_period_end
    much_faster = c.burn_down(
        [g], entries, currency="USD", now=now, period_start=OCT_START, period_end=OCT_END, window_days=60,
        accrued=D("380.00"), threshold=D("200.00"),
    )  # fmt: skip
    assert much_faster.runs_out_before_period_end and much_faster.below_threshold
    assert much_faster.reasons() == ["below USD 200.00", "runs out before the period ends (2026-11-01)"]


def test_burn_down_counts_only_what_the_period_end_invoice_may_use():
    mid = grant(1, "500.00", expires=datetime(2026, 10, 25, tzinfo=UTC))
    entries = ledger(mid) + [c.Entry(1, c.EntryKind.DRAW, D("-30.00"), datetime(2026, 10, 2, tzinfo=UTC), 1)]
    b = c.burn_down(
        [mid], entries, currency="USD", now=datetime(2026, 10, 20, tzinfo=UTC), period_start=OCT_START,
        period_end=OCT_END, window_days=30,
    )  # fmt: skip
    assert b.available == D("470.00") and b.usable_at_period_end == 0 and b.runs_out_before_period_end


# ---------------------------------------------------------------------------------- properties

CURRENCIES = st.sampled_from(["USD", "JPY", "KWD", "EUR"])


@st.composite
def scenarios(draw):  # type: ignore[no-untyped-def]
    currency = draw(CURRENCIES)
    unit = {"USD": 1, "EUR": 1, "JPY": 1, "KWD": 10}[currency]  # KWD is billed to 0.01: minor units of 10
    n = draw(st.integers(0, 6))
    grants = []
    for gid in range(1, n + 1):
        effective = OCT_START + timedelta(days=draw(st.integers(-60, 90)))
        expires = draw(st.one_of(st.none(), st.integers(1, 120).map(lambda d, e=effective: e + timedelta(days=d))))
        grants.append(
            c.Grant(
                gid,
                currency,
                from_minor(draw(st.integers(1, 10**7)) * unit, currency),
                draw(st.sampled_from(list(c.CreditKind))),
                effective,
                expires,
                draw(st.integers(0, 100)),
            )
        )
    invoices = draw(
        st.lists(
            st.tuples(
                st.integers(-(10**5), 10**8).map(lambda m: from_minor(m * unit, currency)),
                st.sampled_from([D("0"), D("5"), D("8.25"), D("19"), D("100")]),
                st.sampled_from(["keep", "void", "credit"]),
            ),
            max_size=5,
        )
    )
    return currency, grants, invoices


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_ledger_sums_to_the_balance_and_consumption_never_exceeds_the_grants(scenario):
    currency, grants, invoices = scenario
    entries = ledger(*grants)
    granted = sum((g.amount for g in grants), D(0))
    period_end = OCT_END
    for invoice_id, (charges, rate, fate) in enumerate(invoices, start=1):
        left = c.remainders(entries)
        usable = sum((left[g.id] for g in grants if g.covers(period_end)), D(0))
        a = c.apply_credits(
            currency=currency, charges=charges, tax_rate=rate, grants=grants, entries=entries, period_end=period_end
        )
        # the invoice total is charges minus credits, to the minor unit, and never below zero by credits
        assert a.total == a.charges + a.tax - a.promotional - a.purchased
        assert a.tax == c.tax_on(a.charges - a.promotional, rate, currency)
        assert a.credits <= usable and a.promotional <= max(charges, D(0))
        assert a.total >= min(charges + c.tax_on(charges, rate, currency), D(0))
        assert a.credits == sum((d.amount for d in a.draws), D(0))
        for d in a.draws:
            assert 0 < d.amount <= left[d.grant_id] and d.remaining_after >= 0
        if usable and charges > 0:  # credits are used as far as they go
            assert a.credits > 0
        entries += record(a, invoice_id, at=period_end)
        if fate == "void":
            entries += [
                c.Entry(r.grant_id, c.EntryKind.REVERSAL, r.amount, period_end, invoice_id)
                for r in c.reversals(entries, invoice_id)
            ]
            entries += [  # voiding twice gives nothing back twice
                c.Entry(r.grant_id, c.EntryKind.REVERSAL, r.amount, period_end, invoice_id)
                for r in c.reversals(entries, invoice_id)
            ]
        elif fate == "credit":
            entries += [
                c.Entry(r.grant_id, c.EntryKind.REVERSAL, r.amount, period_end, invoice_id)
                for r in c.reversals(entries, invoice_id, a.credits / 2)
            ]
        entries += [c.Entry(x.grant_id, c.EntryKind.EXPIRY, -x.amount, period_end) for x in c.expiries(
            grants, entries, period_end
        )]  # fmt: skip
        period_end = (period_end + timedelta(days=32)).replace(day=1)
        problems = c.check_ledger(grants, entries)
        assert problems == [], problems
        left = c.remainders(entries)
        assert c.balance(entries) == sum(left.values(), D(0))
        assert all(0 <= left[g.id] <= g.amount for g in grants)
        consumed = -sum((e.amount for e in entries if e.kind in (c.EntryKind.DRAW, c.EntryKind.REVERSAL)), D(0))
        assert 0 <= consumed <= granted


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_draw_down_does_not_depend_on_the_order_grants_are_listed(scenario):
    currency, grants, invoices = scenario
    charges = invoices[0][0] if invoices else D(100)
    one = apply(str(charges), "8.25", grants, ledger(*grants), currency=currency)
    two = apply(str(charges), "8.25", list(reversed(grants)), list(reversed(ledger(*grants))), currency=currency)
    assert one == two
