"""Credit note maths (billctl.core.credit): never more credited than the invoice, per line or in
total; credited + left == total to the minor unit; tax credited in proportion, rounded once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.core.credit import Credited, CreditError, Invoice, InvoiceLine, Note, left, plan, tax_share


def invoice(amounts: list[int], tax_percent: int = 0, discount: int = 0) -> Invoice:
    lines = [InvoiceLine(i, "usage", f"line {i}", a) for i, a in enumerate(amounts, start=1)]
    if discount:
        lines.append(InvoiceLine(len(lines) + 1, "discount", "Discount", -discount))
    subtotal = sum(x.amount for x in lines)
    tax = (2 * subtotal * tax_percent + 100) // 200 if subtotal > 0 else 0
    if tax:
        lines.append(InvoiceLine(len(lines) + 1, "tax", "Tax", tax))
    return Invoice("INV-1", subtotal, tax, tuple(lines))


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


@settings(max_examples=400)
@given(
    amounts=_amounts,
    tax_percent=st.integers(0, 30),
    discount=st.integers(0, 10**6),
    requests=st.lists(_request, min_size=1, max_size=8),
)
def test_never_over_credited_and_credited_plus_left_is_total(amounts, tax_percent, discount, requests):
    inv = invoice(amounts, tax_percent, min(discount, sum(amounts)))
    notes: list[Note] = []
    for mode, arg in requests:
        credited = Credited.of(notes)
        try:
            if mode == "lines":
                note = plan(inv, credited, lines=arg)
            elif mode == "amount":
                note = plan(inv, credited, amount=arg)
            else:
                note = plan(inv, credited)
        except CreditError:
            continue
        assert note.total > 0 and all(x.amount > 0 for x in note.lines)
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


@given(amounts=_amounts, tax_percent=st.integers(0, 30), order=st.randoms())
def test_crediting_every_line_one_by_one_credits_exactly_the_tax(amounts, tax_percent, order):
    inv = invoice(amounts, tax_percent)
    positions = [x.position for x in inv.lines if x.kind != "tax"]
    order.shuffle(positions)
    notes: list[Note] = []
    for position in positions:
        notes.append(plan(inv, Credited.of(notes), lines=[position]))
    done = Credited.of(notes)
    assert (done.net, done.tax) == (inv.subtotal, inv.tax)
