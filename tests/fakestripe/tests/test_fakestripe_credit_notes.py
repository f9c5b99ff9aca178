"""Credit notes through the real stripe SDK: open invoices (what is due goes down), paid invoices
(refund, balance or out of band must add up), limits, lines, listing, voiding, events."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from stripe import StripeClient

from tests.fakestripe import FakeStripe


def _invoice(fake: FakeStripe, client: StripeClient, amounts: list[int], *, pay: bool, currency: str = "usd") -> Any:
    customer = client.v1.customers.create(params={"email": "billing@acme.test", "metadata": {"tenant_id": "acme"}})
    fake.set_payment_outcome(customer.id, "succeed" if pay else "fail")
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency})
    for i, amount in enumerate(amounts):
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": amount, "description": f"line {i}"}
        )
    return client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})


def _lines(client: StripeClient, invoice_id: str) -> list[Any]:
    return list(client.v1.invoices.line_items.list(invoice_id).data)


def test_open_invoice_credit_reduces_what_is_due(fake: FakeStripe, client: StripeClient) -> None:
    invoice = _invoice(fake, client, [4000, 1000], pay=False)
    assert invoice.status == "open" and invoice.amount_remaining == 5000
    first, _ = _lines(client, invoice.id)
    note = client.v1.credit_notes.create(
        params={
            "invoice": invoice.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": first.id, "amount": 1500}],
            "memo": "wrong plan",
            "metadata": {"billctl_credit_note": "CN-000001"},
        }
    )
    assert (note.status, note.total, note.pre_payment_amount, note.post_payment_amount) == ("issued", 1500, 1500, 0)
    assert note.type == "pre_payment" and note.metadata["billctl_credit_note"] == "CN-000001"
    assert note.lines.data[0].invoice_line_item == first.id
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.amount_due, after.amount_remaining, after.pre_payment_credit_notes_amount) == (3500, 3500, 1500)
    assert fake.events[-1]["type"] == "credit_note.created"

    # a line credits at most what is left of it; a note at most what is left of the invoice
    with pytest.raises(stripe.InvalidRequestError, match="left to credit on it"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id,
                    "lines": [{"type": "invoice_line_item", "invoice_line_item": first.id, "amount": 2501}]}
        )
    with pytest.raises(stripe.InvalidRequestError, match="exceeds the amount left to credit"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 3501})

    # crediting the rest of an open invoice leaves nothing due: it is paid
    rest = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 3500})
    assert rest.lines.data[0].type == "custom_line_item"
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_remaining, paid.amount_paid) == ("paid", 0, 0)
    listed = client.v1.credit_notes.list(params={"invoice": invoice.id})
    assert [n.id for n in listed.data] == [rest.id, note.id]


def test_paid_invoice_credit_must_be_settled_in_full(fake: FakeStripe, client: StripeClient) -> None:
    invoice = _invoice(fake, client, [5000], pay=True)
    assert invoice.status == "paid"
    with pytest.raises(stripe.InvalidRequestError, match="post_payment_amount") as info:
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 2000})  # not settled
    assert info.value.param == "refund_amount"
    with pytest.raises(stripe.InvalidRequestError, match="must equal"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 2000, "refund_amount": 1000})
    before = len(fake.credit_notes)

    refund = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 2000, "refund_amount": 2000})
    assert (refund.pre_payment_amount, refund.post_payment_amount, refund.type) == (0, 2000, "post_payment")
    assert refund.refunds[0].amount_refunded == 2000
    customer = invoice.customer
    credit = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1000, "credit_amount": 1000})
    assert client.v1.customers.retrieve(customer).balance == -1000  # taken off the next invoice
    oob = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 500, "out_of_band_amount": 500})
    assert oob.out_of_band_amount == 500
    assert len(fake.credit_notes) == before + 3
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.amount_due, after.post_payment_credit_notes_amount) == ("paid", 5000, 3500)
    fake.invoices[invoice.id]["amount_paid_off_stripe"] = 5000  # as if paid outside Stripe: nothing to refund
    with pytest.raises(stripe.InvalidRequestError, match="refund amount"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1500, "refund_amount": 1500})

    # voiding a balance credit gives it back; a refund cannot be voided
    voided = client.v1.credit_notes.void_credit_note(credit.id)
    assert voided.status == "void" and client.v1.customers.retrieve(customer).balance == 0
    with pytest.raises(stripe.InvalidRequestError, match="refund"):
        client.v1.credit_notes.void_credit_note(refund.id)
    assert [e["type"] for e in fake.events if e["type"].startswith("credit_note.")][-1] == "credit_note.voided"


def test_partly_paid_invoice_splits_pre_and_post(fake: FakeStripe, client: StripeClient) -> None:
    invoice = _invoice(fake, client, [6000], pay=False)
    paid = fake.pay_part(invoice.id, 4000)  # a partial payment through Stripe
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("open", 4000, 2000)
    with pytest.raises(ValueError, match="between 1 and what is due"):
        fake.pay_part(invoice.id, 2001)
    with pytest.raises(stripe.InvalidRequestError, match=r"post_payment_amount \(1000\)"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 3000})
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 3000, "credit_amount": 1000})
    assert (note.pre_payment_amount, note.post_payment_amount, note.type) == (2000, 1000, "mixed")
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"


@pytest.mark.parametrize(
    ("currency", "bad", "good", "code"),
    [
        ("kwd", 1005, 1010, "invalid_charge_amount"),  # thousandths ending in 0
        ("isk", 150, 100, "invalid_charge_amount_no_decimal_compatible"),  # whole krónur, two-decimal API
        ("ugx", 50, 100, "invalid_charge_amount_no_decimal_compatible"),
    ],
)
def test_credit_note_amounts_follow_the_currency_rules(
    fake: FakeStripe, client: StripeClient, currency: str, bad: int, good: int, code: str
) -> None:
    """Stripe's amount rules hold for credit notes as for charges and refunds: each line, the
    amount, and each settling amount."""
    invoice = _invoice(fake, client, [10_000], pay=False, currency=currency)
    fake.pay_part(invoice.id, 5000)
    (line,) = _lines(client, invoice.id)
    refused = [
        {"amount": bad},
        {"lines": [{"type": "invoice_line_item", "invoice_line_item": line.id, "amount": bad}]},
        {"lines": [{"type": "custom_line_item", "description": "x", "unit_amount": bad}]},
        {"amount": 5000 + bad, "refund_amount": bad},
    ]
    for params in refused:
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.credit_notes.create(params={"invoice": invoice.id, **params})
        assert info.value.code == code, params
    assert fake.credit_notes == {}
    note = client.v1.credit_notes.create(
        params={"invoice": invoice.id, "amount": 5000 + good, "refund_amount": good}
    )
    assert (note.pre_payment_amount, note.post_payment_amount) == (5000, good)


def test_only_finalized_invoices_and_valid_lines(fake: FakeStripe, client: StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "x@acme.test"})
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": "usd"})
    client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": 100})
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        client.v1.credit_notes.create(params={"invoice": draft.id, "amount": 50})
    with pytest.raises(stripe.InvalidRequestError) as info:  # the SDK's own parameter definitions
        client.v1.credit_notes.create(params={"invoice": draft.id, "amount": 50, "reason": "changed_my_mind"})
    assert info.value.param == "reason"
    invoice = _invoice(fake, client, [1000], pay=False)
    with pytest.raises(stripe.InvalidRequestError, match="not on invoice"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id,
                    "lines": [{"type": "invoice_line_item", "invoice_line_item": "il_nope", "amount": 1}]}
        )
    with pytest.raises(stripe.InvalidRequestError, match="description"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id, "lines": [{"type": "custom_line_item", "unit_amount": 5}]}
        )
    with pytest.raises(stripe.InvalidRequestError, match="sum of the lines"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id, "amount": 7,
                    "lines": [{"type": "custom_line_item", "description": "x", "unit_amount": 5}]}
        )
    client.v1.invoices.void_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="void"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 50})
    with pytest.raises(stripe.InvalidRequestError, match="No such credit note"):
        client.v1.credit_notes.retrieve("cn_missing")
    assert fake.credit_notes == {}


def test_paid_invoices_cannot_be_voided(fake: FakeStripe, client: StripeClient) -> None:
    invoice = _invoice(fake, client, [1000], pay=True)
    with pytest.raises(stripe.InvalidRequestError, match="only void open or uncollectible"):
        client.v1.invoices.void_invoice(invoice.id)
