"""Prepaid credits in Stripe's terms (issue 13), pure: credit lines as negative, non-discountable items
naming their grant, the draft check counting them, negative amounts under each currency's rule, and a
credits purchase as a one-off invoice (parameters, draft check, idempotency keys)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billctl.core.money import MoneyError, to_stripe_amount
from billctl.stripe import idempotency as keys
from billctl.stripe import mapping as m
from billctl.stripe.mapping import purchases as pm

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
NUMBER = "INV-2026-10-000001"


def _invoice(currency: str = "USD") -> m.InvoiceIn:
    lines = (
        m.LineIn(1, "base", "Base fee", "1", "29.00", 2900),
        m.LineIn(2, "credit", "Promotional credit: sign-up (grant 7)", "1", None, -1000, grant_id=7),
        m.LineIn(3, "tax", "Tax 10%", "1", None, 190),
        m.LineIn(4, "credit", "Prepaid credit: top-up (grant 9)", "1", None, -500, grant_id=9),
    )
    return m.InvoiceIn(NUMBER, "acme", "Acme", "2026-10", currency, 1590, START, END, "UTC", lines)


def _draft(inv: m.InvoiceIn) -> tuple[dict, list[dict]]:
    items = [{"id": f"ii_{x.position}", **m.item_params(inv, x, "cus_1", "in_1")} for x in inv.lines]
    total = sum(i["amount"] for i in items)
    draft = {"id": "in_1", "currency": "usd", "subtotal": total, "total": total, "status": "draft"}
    return draft, items


@pytest.mark.parametrize(
    ("currency", "minor", "sent"),
    [("USD", -1525, -1525), ("JPY", -1000, -1000), ("UGX", -5, -500), ("KWD", -1230, -1230), ("ISK", -500, -500)],
)
def test_negative_amounts_follow_the_currency_rules(currency: str, minor: int, sent: int) -> None:
    assert to_stripe_amount(minor, currency) == sent


@pytest.mark.parametrize(("currency", "minor"), [("KWD", -1235), ("ISK", -150)])
def test_negative_amounts_finer_than_stripe_charges_are_refused(currency: str, minor: int) -> None:
    with pytest.raises(MoneyError):
        to_stripe_amount(minor, currency)


def test_a_credit_line_is_a_negative_non_discountable_item_naming_its_grant() -> None:
    inv = _invoice()
    credit = m.item_params(inv, inv.lines[1], "cus_1", "in_1")
    assert credit["amount"] == -1000 and credit["discountable"] is False
    assert credit["metadata"] == {m.META_INVOICE: NUMBER, m.META_LINE: "2", "kind": "credit", m.META_CREDIT_GRANT: "7"}
    base = m.item_params(inv, inv.lines[0], "cus_1", "in_1")
    assert m.META_CREDIT_GRANT not in base["metadata"] and base["discountable"] is False


def test_the_draft_check_counts_credit_items() -> None:
    inv = _invoice()
    draft, items = _draft(inv)
    assert draft["total"] == inv.total_minor
    assert m.draft_differences(inv, draft, items) == []

    discountable = [dict(i, discountable=True) if i["id"] == "ii_4" else i for i in items]
    assert m.draft_differences(inv, draft, discountable) == ["line 4 (credit) is discountable in Stripe"]
    other = [dict(i, metadata={**i["metadata"], m.META_CREDIT_GRANT: "8"}) if i["id"] == "ii_2" else i for i in items]
    assert m.draft_differences(inv, draft, other) == ["line 2 (credit) names grant 8 instead of 7"]
    missing = [i for i in items if i["id"] != "ii_4"]
    short = dict(draft, subtotal=2090, total=2090)
    assert m.draft_differences(inv, short, missing) == [
        "line 4 (credit) is missing",
        "subtotal 20.90 USD instead of 15.90 USD",
        "total 20.90 USD instead of 15.90 USD",
    ]


PURCHASE = pm.PurchaseIn(
    id=3, tenant_key="acme", tenant_name="Acme", currency="USD", amount_minor=50000, reason="Q4 top-up"
)


def test_a_purchase_is_a_one_off_untaxed_invoice_with_one_item() -> None:
    params = pm.purchase_invoice_params(PURCHASE, "cus_1", "send_invoice", 14)
    assert params["description"] == "Prepaid credits purchase 3: 500.00 USD of credits for Acme"
    assert params["automatic_tax"] == {"enabled": False} and params["discounts"] == ""
    assert params["metadata"] == {m.META_CREDIT_PURCHASE: "3", m.META_TENANT: "acme"}
    assert params["days_until_due"] == 14 and params["auto_advance"] is False
    item = pm.purchase_item_params(PURCHASE, "cus_1", "in_1")
    assert item["amount"] == 50000 and item["discountable"] is False
    assert item["metadata"][m.META_CREDIT_PURCHASE] == "3"
    assert pm.purchase_of(params) == 3 and pm.purchase_of({"metadata": {}}) is None


def test_the_purchase_draft_check() -> None:
    item = {"id": "ii_1", **pm.purchase_item_params(PURCHASE, "cus_1", "in_1")}
    draft = {"currency": "usd", "subtotal": 50000, "total": 50000, "automatic_tax": {"enabled": False}}
    assert pm.purchase_draft_differences(PURCHASE, draft, [item]) == []
    foreign = {"id": "ii_x", "amount": 100, "metadata": {}}
    taxed = dict(draft, subtotal=50100, total=50100, total_taxes=[{"amount": 40}])
    assert pm.purchase_draft_differences(PURCHASE, taxed, [item, foreign]) == [
        "items billctl did not add: ii_x",
        "Stripe would add tax to a credits purchase",
        "subtotal 501.00 USD instead of 500.00 USD",
        "total 501.00 USD instead of 500.00 USD",
    ]
    assert pm.purchase_draft_differences(PURCHASE, draft, []) == ["the credits item is missing"]


def test_purchase_keys_are_pinned() -> None:
    params = {"customer": "cus_1", "currency": "usd"}
    assert keys.purchase_key(3, "invoice", params) == "billctl-credit-purchase-3-invoice-1904911bdc1b"
    assert keys.purchase_key(3, "finalize") == "billctl-credit-purchase-3-finalize"
    assert keys.purchase_key(3, "item", {"amount": 4400, "currency": "usd"}).startswith(
        "billctl-credit-purchase-3-item-"
    )
