"""Coupons, customer discounts, discountable items, currency amount rules and search availability,
through the real stripe SDK: what Stripe adds to an invoice unless told not to."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from stripe import StripeClient

from tests.fakestripe import FakeStripe


def _customer(client: StripeClient, **extra: Any) -> Any:
    return client.v1.customers.create(params={"email": "billing@acme.test", "metadata": {"tenant_id": "acme"},
                                              **extra})


def _draft(client: StripeClient, customer_id: str, items: list[dict[str, Any]], currency: str = "usd",
           **params: Any) -> Any:
    invoice = client.v1.invoices.create(params={"customer": customer_id, "currency": currency, **params})
    for item in items:
        client.v1.invoice_items.create(params={"customer": customer_id, "invoice": invoice.id, "currency": currency,
                                               **item})
    return client.v1.invoices.retrieve(invoice.id)


def test_invoices_inherit_the_customers_coupon_unless_discounts_is_empty(fake: FakeStripe, client: StripeClient):
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever", "name": "loyal"})
    customer = _customer(client)
    discount = fake.give_customer_discount(customer.id, coupon.id)
    assert client.v1.customers.retrieve(customer.id).discount.id == discount["id"]

    inherited = _draft(client, customer.id, [{"amount": 1000}, {"amount": 200}])
    assert inherited.discounts == [discount["id"]]
    assert (inherited.subtotal, inherited.total) == (1200, 1080)
    assert [(d.amount, d.discount) for d in inherited.total_discount_amounts] == [(120, discount["id"])]
    assert [d.amount for line in inherited.lines.data for d in line.discount_amounts] == [100, 20]

    # an empty list sends nothing at all (the SDK drops it), so Stripe still inherits
    also_inherited = _draft(client, customer.id, [{"amount": 1000}], discounts=[])
    assert also_inherited.total == 900
    # the empty string is how to say "no discounts"
    plain = _draft(client, customer.id, [{"amount": 1000}, {"amount": 200}], discounts="")
    assert plain.discounts == [] and plain.total == 1200 and plain.total_discount_amounts == []

    # a discount applies to discountable items only; negative items are not discountable by default
    mixed = _draft(client, customer.id, [{"amount": 1000}, {"amount": 200, "discountable": False}, {"amount": -100}])
    assert (mixed.subtotal, mixed.total) == (1100, 1000)
    assert [line.discountable for line in mixed.lines.data] == [True, False, False]


def test_amount_off_is_capped_and_applies_only_in_its_currency(client: StripeClient):
    customer = _customer(client)
    five = client.v1.coupons.create(params={"amount_off": 500, "currency": "usd"})
    euro = client.v1.coupons.create(params={"amount_off": 500, "currency": "eur"})
    capped = _draft(client, customer.id, [{"amount": 300}, {"amount": 100, "discountable": False}],
                    discounts=[{"coupon": five.id}])
    assert (capped.subtotal, capped.total) == (400, 100)
    other = _draft(client, customer.id, [{"amount": 300}], discounts=[{"coupon": euro.id}])
    assert other.total == 300


def test_item_discounts_apply_before_invoice_discounts(client: StripeClient):
    customer = _customer(client)
    half = client.v1.coupons.create(params={"percent_off": 50})
    tenth = client.v1.coupons.create(params={"percent_off": 10})
    draft = _draft(client, customer.id, [{"amount": 1000, "discounts": [{"coupon": half.id}]}, {"amount": 1000}],
                   discounts=[{"coupon": tenth.id}])
    # 1000 - 500 = 500, then 10 % of (500 + 1000) = 150
    assert draft.total == 2000 - 500 - 150
    assert sorted(d.amount for d in draft.total_discount_amounts) == [150, 500]


def test_discounts_can_be_changed_on_a_draft_only(client: StripeClient):
    customer = _customer(client)
    coupon = client.v1.coupons.create(params={"percent_off": 25})
    draft = _draft(client, customer.id, [{"amount": 1000}], discounts="")
    updated = client.v1.invoices.update(draft.id, params={"discounts": [{"coupon": coupon.id}]})
    assert updated.total == 750
    assert client.v1.invoices.update(draft.id, params={"discounts": ""}).total == 1000
    client.v1.invoices.update(draft.id, params={"automatic_tax": {"enabled": True}})
    assert client.v1.invoices.retrieve(draft.id).automatic_tax.enabled is True
    client.v1.invoices.finalize_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.update(draft.id, params={"discounts": [{"coupon": coupon.id}]})
    assert info.value.code == "invoice_not_editable"


def test_a_once_coupon_ends_with_the_first_invoice_and_can_be_removed(fake: FakeStripe, client: StripeClient):
    customer = _customer(client)
    once = client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    fake.give_customer_discount(customer.id, once.id)
    first = _draft(client, customer.id, [{"amount": 1000}])
    assert client.v1.invoices.finalize_invoice(first.id).total == 800
    assert client.v1.customers.retrieve(customer.id).discount is None
    assert _draft(client, customer.id, [{"amount": 1000}]).total == 1000

    forever = client.v1.coupons.create(params={"percent_off": 20, "duration": "forever"})
    fake.give_customer_discount(customer.id, forever.id)
    deleted = client.v1.customers.delete_discount(customer.id)
    assert deleted.deleted is True
    assert _draft(client, customer.id, [{"amount": 1000}]).total == 1000
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.delete_discount(customer.id)


def test_customer_balance_is_applied_at_finalization_not_to_the_total(client: StripeClient):
    customer = _customer(client, balance=-300)  # a credit
    draft = _draft(client, customer.id, [{"amount": 1000}], discounts="")
    assert (draft.total, draft.amount_due) == (1000, 1000)
    final = client.v1.invoices.finalize_invoice(draft.id)
    assert (final.total, final.starting_balance, final.amount_due) == (1000, -300, 700)


@pytest.mark.parametrize(
    ("currency", "refused", "accepted", "code"),
    [
        ("kwd", 1235, 1230, "invalid_charge_amount"),  # three decimals, the last one 0
        ("bhd", 5, 10, "invalid_charge_amount"),
        ("isk", 550, 500, "invalid_charge_amount_no_decimal_compatible"),  # whole krónur, two-decimal API
        ("ugx", 5, 500, "invalid_charge_amount_no_decimal_compatible"),
    ],
)
def test_amounts_stripe_cannot_charge_are_refused(client: StripeClient, currency, refused, accepted, code):
    customer = _customer(client)
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id, "amount": refused,
                                               "currency": currency})
    assert info.value.code == code and currency.upper() in str(info.value)
    item = client.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id,
                                                  "amount": accepted, "currency": currency})
    assert item.amount == accepted


def test_other_currencies_take_any_amount(client: StripeClient):
    customer = _customer(client)
    for currency, amount in (("jpy", 1), ("huf", 101), ("twd", 101), ("usd", 1)):
        invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency})
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id, "amount": amount,
                                               "currency": currency})


def test_search_can_be_unavailable_like_for_accounts_in_india(fake: FakeStripe, client: StripeClient):
    customer = _customer(client)
    fake.search_available = False
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.search(params={"query": "metadata['tenant_id']:'acme'"})
    assert info.value.http_status == 400 and "search feature is temporarily unavailable" in str(info.value)
    listed = client.v1.customers.list(params={"email": "billing@acme.test"})
    assert [c.id for c in listed.data] == [customer.id]
    fake.search_available = True
    assert client.v1.customers.search(params={"query": "metadata['tenant_id']:'acme'"}).data[0].id == customer.id


def test_negative_items_lower_the_total_as_stripe_adds_them(fake: FakeStripe, client: StripeClient):
    """Stripe takes negative invoice items ("a negative amount will reduce the amount_due on the
    invoice"), not discountable by default; billctl's credit lines rely on it (issue 13). A customer
    coupon on an invoice created with discounts="" touches none of them; the currency rule applies to
    negative amounts too."""
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "forever"})
    customer = _customer(client)
    fake.give_customer_discount(customer.id, coupon.id)
    items = [
        {"amount": 4400, "discountable": False},
        {"amount": -1000, "discountable": False, "metadata": {"billctl_credit_grant": "7"}},
        {"amount": -525},
    ]
    draft = _draft(client, customer.id, items, discounts="")
    assert (draft.subtotal, draft.total, draft.total_discount_amounts) == (2875, 2875, [])
    assert [line.discountable for line in draft.lines.data] == [False, False, False]
    final = client.v1.invoices.finalize_invoice(draft.id)
    assert (final.total, final.amount_due) == (2875, 2875)
    assert client.v1.customers.retrieve(customer.id).balance == 0
    kwd = client.v1.invoices.create(params={"customer": customer.id, "currency": "kwd", "discounts": ""})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": kwd.id, "amount": -1235})
    assert refused.value.code == "invalid_charge_amount"
