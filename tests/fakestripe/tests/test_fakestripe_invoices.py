"""Invoices and invoice items through the real stripe SDK: drafts, finalization, payment, dunning."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from stripe import StripeClient

from tests.fakestripe import FakeStripe


def _customer(client: StripeClient, tenant: str = "acme", **extra: Any) -> Any:
    return client.v1.customers.create(params={"email": f"billing@{tenant}.test",
                                              "metadata": {"tenant_id": tenant}, **extra})


def _draft(client: StripeClient, customer_id: str, amounts: list[int], **params: Any) -> Any:
    invoice = client.v1.invoices.create(params={"customer": customer_id, "currency": "usd",
                                                "metadata": {"period": "2026-10"}, **params})
    for i, amount in enumerate(amounts):
        client.v1.invoice_items.create(params={
            "customer": customer_id, "invoice": invoice.id, "amount": amount, "currency": "usd",
            "description": f"line {i}", "period": {"start": 1, "end": 2}, "metadata": {"line": str(i)},
        })
    return client.v1.invoices.retrieve(invoice.id)


def _types(fake: FakeStripe) -> list[str]:
    return [e["type"] for e in fake.events]


def test_draft_items_finalize_and_auto_pay(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    draft = _draft(client, customer.id, [4400, 175], auto_advance=True)
    assert draft.status == "draft" and draft.number is None
    assert (draft.subtotal, draft.total, draft.amount_due) == (4575, 4575, 4575)
    assert [line.amount for line in draft.lines.data] == [4400, 175]
    assert draft.lines.data[0].parent.invoice_item_details.invoice_item.startswith("ii_")
    items = client.v1.invoice_items.list(params={"invoice": draft.id})
    assert sorted(i.amount for i in items.data) == [175, 4400]

    paid = client.v1.invoices.finalize_invoice(draft.id)
    assert paid.status == "paid"
    assert paid.number == "FAKE-0001"
    assert paid.hosted_invoice_url.startswith("https://")
    assert (paid.amount_paid, paid.amount_remaining, paid.attempt_count) == (4575, 0, 1)
    assert paid.status_transitions.finalized_at == fake.now()
    assert paid.status_transitions.paid_at == fake.now()
    assert _types(fake)[-4:] == ["invoice.finalized", "invoice.paid", "invoice.payment_succeeded"][-3:] \
        or _types(fake)[-3:] == ["invoice.finalized", "invoice.paid", "invoice.payment_succeeded"]

    with pytest.raises(stripe.InvalidRequestError) as info:  # finalized means immutable
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": 1})
    assert info.value.code == "invoice_not_editable"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.finalize_invoice(draft.id)


def test_auto_pay_failure_and_retry_schedule(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client, "beta")
    fake.set_payment_outcome("beta", "fail")  # by metadata tenant
    draft = _draft(client, customer.id, [1000], auto_advance=True)
    invoice = client.v1.invoices.finalize_invoice(draft.id)
    assert invoice.status == "open"
    assert invoice.attempt_count == 1 and invoice.attempted is True
    assert invoice.next_payment_attempt == fake.now() + 3 * 86400
    assert _types(fake)[-2:] == ["invoice.finalized", "invoice.payment_failed"]

    fake.set_payment_outcome(customer.id, "succeed")  # the customer fixed the card
    fake.advance(3 * 86400)  # Stripe retries on schedule
    invoice = client.v1.invoices.retrieve(draft.id)
    assert invoice.status == "paid" and invoice.attempt_count == 2
    assert fake.events[-1]["request"]["id"] is None  # automatic, not caused by an API request


def test_manual_pay_declined_is_card_error(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client, "gamma")
    fake.set_payment_outcome("billing@gamma.test", "fail")  # by email
    draft = _draft(client, customer.id, [2500])
    invoice = client.v1.invoices.finalize_invoice(draft.id)
    assert invoice.status == "open" and invoice.attempt_count == 0  # auto_advance off: no attempt
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(draft.id)
    assert info.value.http_status == 402 and info.value.code == "card_declined"
    stored = fake.invoices[draft.id]
    assert stored["attempt_count"] == 1 and stored["next_payment_attempt"] is not None
    assert fake.events[-1]["type"] == "invoice.payment_failed"

    fake.set_payment_outcome("gamma", "succeed")
    assert client.v1.invoices.pay(draft.id).status == "paid"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(draft.id)


def test_zero_total_invoice_is_paid_on_finalize(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    draft = _draft(client, customer.id, [])
    invoice = client.v1.invoices.finalize_invoice(draft.id)
    assert invoice.status == "paid" and invoice.amount_due == 0 and invoice.attempt_count == 0


def test_send_invoice_void_and_uncollectible(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice"})
    assert info.value.param == "days_until_due"
    draft = _draft(client, customer.id, [900], collection_method="send_invoice", days_until_due=30)
    sent = client.v1.invoices.send_invoice(draft.id)
    assert sent.status == "open" and sent.due_date == fake.now() + 30 * 86400
    assert client.v1.invoices.void_invoice(draft.id).status == "void"
    assert fake.events[-1]["type"] == "invoice.voided"

    other = _draft(client, customer.id, [100])
    client.v1.invoices.finalize_invoice(other.id)
    assert client.v1.invoices.mark_uncollectible(other.id).status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(other.id)


def test_business_rules(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(params={"customer": "cus_missing", "amount": 1, "currency": "usd"})
    assert info.value.code == "resource_missing" and info.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1, "currency": "xyz"})
    assert info.value.param == "currency"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": "12.5", "currency": "usd"})
    assert info.value.code == "parameter_invalid_integer" and info.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "by_pigeon"})
    assert info.value.param == "collection_method"
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": "eur"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id, "amount": 5,
                                               "currency": "usd"})
    assert info.value.param == "currency"


def test_pending_items_delete_and_lines_pagination(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    pending = [client.v1.invoice_items.create(params={"customer": customer.id, "amount": 100 + i,
                                                      "currency": "usd"}) for i in range(12)]
    assert client.v1.invoice_items.list(params={"pending": True, "limit": 100}).data.__len__() == 12
    client.v1.invoice_items.delete(pending[0].id)
    invoice = client.v1.invoices.create(params={"customer": customer.id, "pending_invoice_items_behavior": "include"})
    assert invoice.total == sum(101 + i for i in range(11))
    assert invoice.lines.total_count == 11 and invoice.lines.has_more is True and len(invoice.lines.data) == 10
    lines = client.v1.invoices.line_items.list(invoice.id, params={"limit": 4})
    assert len(list(lines.auto_paging_iter())) == 11
    client.v1.invoices.finalize_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.delete(pending[1].id)
    assert info.value.code == "invoice_not_editable"


def test_auto_advance_draft_finalizes_after_an_hour(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    draft = _draft(client, customer.id, [700], auto_advance=True)
    fake.advance(3599)
    assert client.v1.invoices.retrieve(draft.id).status == "draft"
    fake.advance(1)
    assert client.v1.invoices.retrieve(draft.id).status == "paid"


def test_search_invoices_and_expand(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    draft = _draft(client, customer.id, [300])
    found = client.v1.invoices.search(params={"query": f"metadata['period']:'2026-10' AND customer:'{customer.id}'"})
    assert [i.id for i in found.data] == [draft.id]
    assert client.v1.invoices.search(params={"query": "total>300"}).data == []
    listed = client.v1.invoices.list(params={"customer": customer.id, "status": "draft", "expand": ["data.customer"]})
    assert listed.data[0].customer.email == "billing@acme.test"


def test_below_minimum_charge_is_carried_to_the_balance(fake: FakeStripe, client: StripeClient) -> None:
    customer = _customer(client)
    small = client.v1.invoices.finalize_invoice(_draft(client, customer.id, [30]).id, params={"auto_advance": True})
    assert (small.status, small.amount_paid, small.attempt_count) == ("paid", 0, 0)
    assert client.v1.customers.retrieve(customer.id).balance == 30
    nxt = client.v1.invoices.finalize_invoice(_draft(client, customer.id, [1000]).id, params={"auto_advance": True})
    assert (nxt.starting_balance, nxt.amount_due, nxt.status) == (30, 1030, "paid")
    assert client.v1.customers.retrieve(customer.id).balance == 0
