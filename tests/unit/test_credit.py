"""Credit note maths (billctl.core.credit): never more credited than the invoice, per line or in
total; credited + left == total to the minor unit; tax credited in proportion, rounded once to the
currency's billing unit (``step``: KWD 10, ISK 100 minor units), every amount a multiple of it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.core.credit import Credited, CreditError, Invoice, InvoiceLine, Note, left, plan, tax_share


def invoice(amounts: list[int], tax_percent: int = 0, discount: int = 0, step: int = 1) -> Invoice:
    """Lines of ``amounts`` billing units (``step`` minor units each), as rating rounds them."""
    lines = [InvoiceLine(i, "usage", f"line {i}", a * step) for i, a in enumerate(amounts, start=1)]
    if discount:
        lines.append(InvoiceLine(len(lines) + 1, "discount", "Discount", -discount * step))
    subtotal = sum(x.amount for x in lines)
    tax = step * ((2 * subtotal * tax_percent + 100 * step) // (200 * step)) if subtotal > 0 else 0
    if tax:
        lines.append(InvoiceLine(len(lines) + 1, "tax", "Tax", tax))
    return Invoice("INV-1", subtotal, tax, tuple(lines), step)


def test_whole_invoice_credits_its_total_and_tax():
    inv = invoice([2900, 1500], tax_percent=10)  # 44.00 + 4.40
    note = plan(inv, Credited())
    assert (note.net, note.tax, note.total) == (4400, 440, 4840)
    assert [x.kind for x in note.lines] == ["amount", "tax"]
    with pytest.raises(CreditError, match="nothing is left"):
        plan(inv, Credited.of([note]))


def test_lines_credit_their_share_of_tax_rounded_once():
    inv = invoice([2900, 1501], tax_percent=8)  # subtotal 44.01, tax 3.52
    first = plan(inv, Credited(), lines=[2])
    assert first.net == 1501 and first.tax == tax_share(inv, 1501) == 120  # 3.52 x 15.01 / 44.01 = 1.2005 -> 1.20
    second = plan(inv, Credited.of([first]), lines=[1])
    assert first.tax + second.tax == inv.tax  # crediting every line credits exactly the invoice's tax
    assert left(inv, Credited.of([first, second])).total == 0


def test_tax_share_rounds_once_half_up_to_the_billing_unit():
    # KWD 29.000 + 14.750, tax 3.280: the usage line's share is 1.10583, so 1.110 (Stripe takes
    # thousandths ending in 0 only), not 1.106; the base line then takes the rest, 2.170
    kwd = Invoice("INV-1", 43750, 3280, (InvoiceLine(1, "base", "b", 29000), InvoiceLine(2, "usage", "u", 14750),
                                         InvoiceLine(3, "tax", "t", 3280)), step=10)
    first = plan(kwd, Credited(), lines=[2])
    assert (first.net, first.tax) == (14750, 1110)
    assert plan(kwd, Credited.of([first]), lines=[1]).tax == 2170
    # ISK 29 + 15 krónur, tax 3 (stored in hundredths): the share of 1.0227 krónur is 1 króna
    isk = invoice([29, 15], tax_percent=8, step=100)
    assert isk.tax == 400 and plan(isk, Credited(), lines=[2]).tax == 100  # 4 x 15 / 44 = 1.36 -> 1
    # exactly half a unit goes up
    half = invoice([1, 1], tax_percent=50, step=100)  # 2 krónur, tax 1: each line's share is 0.50
    assert plan(half, Credited(), lines=[1]).tax == 100


def test_an_invoice_finalized_before_the_rule_is_credited_to_the_minor_unit():
    """KWD 12.345 + tax 1.235 (three decimals, as billctl once rounded): rounding to 0.01 would
    credit 1.240 of tax, more than the invoice has; such an invoice is credited to the thousandth."""
    old = Invoice("INV-1", 12345, 1235, (InvoiceLine(1, "usage", "u", 12345), InvoiceLine(2, "tax", "t", 1235)), 10)
    assert old.unit == 1
    note = plan(old, Credited(), lines=[1])
    assert (note.net, note.tax) == (12345, 1235)


def test_an_amount_finer_than_the_billing_unit_is_refused():
    inv = invoice([4400], tax_percent=10, step=10)
    with pytest.raises(CreditError, match="finer than the currency is charged") as info:
        plan(inv, Credited(), amount=1005)
    assert "multiple of 10" in (info.value.hint or "")
    assert plan(inv, Credited(), amount=1010).total == 1010


def test_amount_is_tax_included():
    inv = invoice([10000], tax_percent=25)  # 100.00 + 25.00
    note = plan(inv, Credited(), amount=5000)
    assert (note.net, note.tax) == (4000, 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lines": [9]}, "has no line 9"),
        ({"lines": [3]}, "is the tax line"),
        ({"lines": [1, 1]}, "given twice"),
        ({"amount": 0}, "more than 0"),
        ({"amount": 10**9}, "is more than the"),
        ({"lines": [1], "amount": 5}, "not both"),
    ],
)
def test_bad_requests_are_refused_with_the_fix(kwargs, message):
    inv = invoice([1000, 2000], tax_percent=10)
    with pytest.raises(CreditError, match=message) as info:
        plan(inv, Credited(), **kwargs)
    assert info.value.hint


def test_discounted_invoice_cannot_have_a_line_credited_beyond_its_subtotal():
    inv = invoice([9900], discount=990)  # 99.00 - 9.90 = 89.10
    with pytest.raises(CreditError, match="only 8910") as info:
        plan(inv, Credited(), lines=[1])
    assert "--amount" in (info.value.hint or "")
    with pytest.raises(CreditError, match="nothing to credit"):
        plan(inv, Credited(), lines=[2])
    assert plan(inv, Credited()).total == 8910


_amounts = st.lists(st.integers(1, 10**7), min_size=1, max_size=6)
_request = st.one_of(
    st.tuples(st.just("rest"), st.just(())),
    st.tuples(st.just("lines"), st.lists(st.integers(1, 8), min_size=1, max_size=3)),
    st.tuples(st.just("amount"), st.integers(-5, 2 * 10**7)),
)


_steps = st.sampled_from([1, 10, 100])  # USD/JPY, KWD (0.01 in thousandths), ISK (krónur in hundredths)


@settings(max_examples=400)
@given(
    amounts=_amounts,
    tax_percent=st.integers(0, 30),
    discount=st.integers(0, 10**6),
    requests=st.lists(_request, min_size=1, max_size=8),
    step=_steps,
    fine=st.booleans(),
)
def test_never_over_credited_and_credited_plus_left_is_total(amounts, tax_percent, discount, requests, step, fine):
    inv = invoice(amounts, tax_percent, min(discount, sum(amounts)), step)
    notes: list[Note] = []
    for mode, arg in requests:
        credited = Credited.of(notes)
        if mode == "amount":  # in billing units, or (``fine``) in minor units, mostly too fine then
            arg = arg if fine else arg * step
        try:
            if mode == "lines":
                note = plan(inv, credited, lines=arg)
            elif mode == "amount":
                note = plan(inv, credited, amount=arg)
            else:
                note = plan(inv, credited)
        except CreditError:
            continue
        assert note.total > 0 and all(x.amount > 0 and x.amount % step == 0 for x in note.lines)
        if mode == "amount":
            assert note.total == arg
        notes.append(note)
        after = Credited.of(notes)
        rest = left(inv, after)
        assert 0 <= after.net <= max(inv.subtotal, 0) and 0 <= after.tax <= inv.tax
        assert after.total + rest.total == inv.total  # to the minor unit
        for x in inv.lines:
            assert after.by_line.get(x.position, 0) <= max(x.amount, 0)
        # tax follows the credited share of the subtotal (one rounding) unless amounts were credited
        if all(x.kind != "amount" for n in notes for x in n.lines):
            assert after.tax == tax_share(inv, after.net)
    final = Credited.of(notes)
    if left(inv, final).total > 0:
        notes.append(plan(inv, final))
    done = Credited.of(notes)
    assert (done.net, done.tax) == (max(inv.subtotal, 0), inv.tax)
    assert left(inv, done).total == 0


@given(amounts=_amounts, tax_percent=st.integers(0, 30), order=st.randoms(), step=_steps)
def test_crediting_every_line_one_by_one_credits_exactly_the_tax(amounts, tax_percent, order, step):
    inv = invoice(amounts, tax_percent, step=step)
    positions = [x.position for x in inv.lines if x.kind != "tax"]
    order.shuffle(positions)
    notes: list[Note] = []
    for position in positions:
        notes.append(plan(inv, Credited.of(notes), lines=[position]))
    done = Credited.of(notes)
    assert (done.net, done.tax) == (inv.subtotal, inv.tax)
    assert all(x.amount % step == 0 for n in notes for x in n.lines)
