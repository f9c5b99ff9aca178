"""Prepaid credits on an invoice, pure (billctl.core.invoice_credits): the draft rebuilt with its credit
lines (promotional, tax on the taxable amount, purchased), the stored credits that price the invoice
again without the ledger, the document of an invoice without credits unchanged, and how a credit
note splits into cash and credits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billctl.core.credits import CreditKind, Entry, EntryKind, Grant, apply_credits, credit_lines
from billctl.core.invoice import BilledLine, InvoiceInputs, billed_for, price_inputs, rate_inputs
from billctl.core.invoice_credits import (
    credited_draft,
    input_credits,
    split_credit,
    stored_application,
)
from billctl.core.money import quantize
from billctl.core.types import InvoiceDraft, Line
from tests.unit.test_invoice_inputs import FINGERPRINT, STORED, _one_plan_inputs

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
ONE = Decimal(1)


def grant(gid: int, amount: str, kind: CreditKind, expires: datetime | None = None, currency: str = "USD") -> Grant:
    return Grant(gid, currency, Decimal(amount), kind, START, expires, reason=f"g{gid}")


def draft(charges: str, rate: str, currency: str = "USD") -> InvoiceDraft:
    """Rating's draft of one base line of ``charges`` taxed at ``rate`` %."""
    s, r = Decimal(charges), Decimal(rate)
    lines = [Line("base", "Base fee", ONE, s, s, s)]
    tax = quantize(s * r / 100, currency) if r > 0 else quantize(Decimal(0), currency)
    if r > 0:
        lines.append(Line("tax", f"Tax {r} %", ONE, None, tax, s * r / 100, {"rate_percent": rate, "on": charges}))
    return InvoiceDraft(currency, tuple(lines), s, tax, s + tax)


def drawn(d: InvoiceDraft, grants: list[Grant], rate: str) -> InvoiceDraft:
    entries = [Entry(g.id, EntryKind.GRANT, g.amount, g.effective_at) for g in grants]
    a = apply_credits(
        currency=d.currency, charges=d.subtotal, tax_rate=Decimal(rate), grants=grants, entries=entries, period_end=END
    )
    return credited_draft(d, a, credit_lines(a, {g.id: g for g in grants}))


def test_promotional_and_purchased_with_tax() -> None:
    grants = [grant(1, "30.00", CreditKind.PROMOTIONAL), grant(2, "500.00", CreditKind.PURCHASED)]
    out = drawn(draft("100.00", "8.25"), grants, "8.25")
    assert [(x.kind, str(x.amount)) for x in out.lines] == [
        ("base", "100.00"), ("credit", "-30.00"), ("tax", "5.78"), ("credit", "-75.78"),
    ]  # fmt: skip
    assert (out.subtotal, out.tax, out.total) == (Decimal("70.00"), Decimal("5.78"), Decimal("0.00"))
    assert sum(x.amount for x in out.lines) == out.total


def test_purchased_only_keeps_ratings_tax_line() -> None:
    d = draft("100.00", "8.25")
    out = drawn(d, [grant(1, "50", CreditKind.PURCHASED)], "8.25")
    assert out.lines[:2] == d.lines and out.total == Decimal("58.25") and out.subtotal == Decimal("100.00")


def test_zero_decimal_currency() -> None:
    grants = [
        grant(1, "1000", CreditKind.PROMOTIONAL, currency="JPY"),
        grant(2, "5000", CreditKind.PURCHASED, currency="JPY"),
    ]
    out = drawn(draft("12345", "10", "JPY"), grants, "10")
    assert (out.subtotal, out.tax, out.total) == (Decimal("11345"), Decimal("1135"), Decimal("7480"))


def test_nothing_drawn_is_the_same_draft() -> None:
    d = draft("44.00", "10")
    assert drawn(d, [], "10") is d
    assert drawn(d, [grant(1, "5", CreditKind.PROMOTIONAL, expires=datetime(2026, 10, 15, tzinfo=UTC))], "10") is d


def test_an_invoice_without_credits_keeps_its_document_and_fingerprint() -> None:
    inputs = InvoiceInputs.from_json(json.loads(STORED))
    assert "credits" not in inputs.to_json() and inputs.fingerprint == FINGERPRINT
    assert json.dumps(inputs.to_json()) == STORED


def test_stored_credits_round_trip_and_price_the_same_lines_again() -> None:
    inputs = _one_plan_inputs({"/v1/search": 25000})  # 44.00, no tax
    rated = rate_inputs(inputs)
    grants = [grant(1, "20", CreditKind.PROMOTIONAL), grant(2, "100", CreditKind.PURCHASED)]
    entries = [Entry(g.id, EntryKind.GRANT, g.amount, g.effective_at) for g in grants]
    entries.append(Entry(2, EntryKind.DRAW, Decimal("-90"), START, invoice_id=9))  # 10.00 left of grant 2
    a = apply_credits(currency="USD", charges=rated.subtotal, tax_rate=Decimal(0), grants=grants, entries=entries,
                      period_end=END)  # fmt: skip
    by_id = {g.id: g for g in grants}
    finalized = credited_draft(rated, a, credit_lines(a, by_id))
    end = inputs.period_end
    stored = InvoiceInputs(**{**inputs.__dict__, "credits": input_credits(a, by_id)})
    doc = json.loads(json.dumps(stored.to_json()))
    assert [c["remaining_before"] for c in doc["credits"]] == ["20", "10"]
    again = InvoiceInputs.from_json(doc)
    assert again.to_json() == doc and again.fingerprint == stored.fingerprint != inputs.fingerprint
    repriced = price_inputs(again)
    assert repriced == finalized and repriced.total == Decimal("14.00")
    application, _ = stored_application(again.credits, currency="USD", charges=rated.subtotal,
                                        tax_rate=Decimal(0), period_end=end)  # fmt: skip
    assert application.draws == a.draws


def test_credit_lines_are_not_charges_for_the_adjustment_diff() -> None:
    lines = [
        BilledLine(1, "INV-1", "base", None, 4400, {}),
        BilledLine(1, "INV-1", "credit", None, -2000, {}),
        BilledLine(1, "INV-1", "tax", None, 240, {}),
    ]
    assert billed_for("2026-10", lines, invoice_id=1, invoice_units=25000).charged_minor == 4400


def test_a_credit_note_gives_back_cash_first() -> None:
    # billed 75.78, 50.00 paid with purchased credits, 25.78 due in cash
    assert split_credit(2578, 0, 2000) == (2000, 0)
    assert split_credit(2578, 2000, 1500) == (578, 922)
    assert split_credit(2578, 3500, 4078) == (0, 4078)
    assert split_credit(0, 0, 500) == (0, 500)


@given(
    charges=st.integers(min_value=0, max_value=10_000_000),
    rate=st.sampled_from(["0", "8.25", "10", "19.6", "7.125"]),
    promo=st.integers(min_value=1, max_value=5_000_000),
    bought=st.integers(min_value=1, max_value=5_000_000),
)
def test_lines_add_up_to_the_total_and_the_total_is_charges_minus_credits(
    charges: int, rate: str, promo: int, bought: int
) -> None:
    d = draft(str(Decimal(charges) / 100), rate)
    grants = [grant(1, str(Decimal(promo) / 100), CreditKind.PROMOTIONAL),
              grant(2, str(Decimal(bought) / 100), CreditKind.PURCHASED)]  # fmt: skip
    out = drawn(d, grants, rate)
    assert sum(x.amount for x in out.lines) == out.total >= 0
    credits = -sum(x.amount for x in out.lines if x.kind == "credit")
    assert out.total == d.subtotal + out.tax - credits  # charges minus credits, tax on the taxable amount
    purchased = -sum(x.amount for x in out.lines if x.kind == "credit" and x.detail["credit_kind"] == "purchased")
    assert out.subtotal + out.tax - purchased == out.total


@given(cash=st.integers(0, 10_000), pieces=st.lists(st.integers(0, 5_000), max_size=6))
def test_credit_notes_never_give_back_more_cash_than_was_due(cash: int, pieces: list[int]) -> None:
    before = given_cash = 0
    for amount in pieces:
        c, back = split_credit(cash, before, amount)
        assert c + back == amount and c >= 0 and back >= 0
        given_cash += c
        before += amount
    assert given_cash == min(cash, before)
