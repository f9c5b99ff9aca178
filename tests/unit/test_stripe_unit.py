"""The pure Stripe rules (no servers) and the throttle (a fake clock, then real HTTP to FakeStripe)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from benchmarks.common import max_in_window
from billctl.stripe import mapping as m
from billctl.stripe.throttle import Throttle

INV = m.InvoiceIn(
    number="INV-2026-10-000007",
    tenant_key="acme",
    tenant_name="Acme",
    period="2026-10",
    currency="USD",
    total_minor=4400,
    period_start=datetime(2026, 10, 1, tzinfo=UTC),
    period_end=datetime(2026, 11, 1, tzinfo=UTC),
    timezone="UTC",
    lines=(
        m.LineIn(1, "base", "Base fee (basic)", "1", "29.00", 2900),
        m.LineIn(2, "usage", "Usage: 25,000 weighted units, 10,000 included", "15000", "0.001", 1500),
        m.LineIn(3, "adjustment", "Adjustment for 2026-09", "1", None, 0, for_period="2026-09"),
    ),
)


def test_idempotency_keys_are_deterministic_and_digest_the_parameters():
    params = m.invoice_params(INV, "cus_1", "charge_automatically", 30)
    create = m.invoice_key(INV.number, "create", params)
    assert create == m.invoice_key(INV.number, "create", dict(params))  # a retry of the same request
    assert create.startswith("billctl-inv-INV-2026-10-000007-create-")
    renamed = m.invoice_params(replace(INV, tenant_name="Acme Corp"), "cus_1", "charge_automatically", 30)
    assert m.invoice_key(INV.number, "create", renamed) != create  # a resend after an edit: a new request
    item = m.item_params(INV, INV.lines[1], "cus_1", "in_1")
    assert m.item_key(INV.number, 2, item).startswith("billctl-inv-INV-2026-10-000007-item-2-")
    assert m.item_key(INV.number, 2, item) != m.item_key(INV.number, 2, {**item, "amount": 1})
    assert m.invoice_key(INV.number, "finalize") == "billctl-inv-INV-2026-10-000007-finalize"
    meta = m.customer_create_params("acme")
    assert m.customer_create_key("acme", meta) == m.customer_create_key("acme", meta)
    assert m.customer_create_key("acme", meta) != m.customer_create_key("globex", m.customer_create_params("globex"))
    assert m.customer_create_key("acme", meta, "cus_old") != m.customer_create_key("acme", meta)
    assert " " not in m.customer_create_key("odd key/with spaces", meta)


def test_customer_update_keys_tell_a_to_b_to_a_apart():
    a, b = m.customer_params("acme", "A", ""), m.customer_params("acme", "B", "")
    first = m.customer_update_key("acme", "cus_1", {"name": "A"}, b, "t1")
    assert first == m.customer_update_key("acme", "cus_1", {"name": "A"}, b, "t1")  # the same update, retried
    assert m.customer_update_key("acme", "cus_1", {"name": "B"}, a, "t2") != first
    assert m.customer_update_key("acme", "cus_1", {"name": "A"}, b, "t3") != first  # a→b→a→b: not a→b again
    assert m.customer_update_key("acme", "cus_2", {"name": "A"}, b, "t1") != first  # a replacement customer


def test_invoice_and_item_params():
    params = m.invoice_params(INV, "cus_1", "charge_automatically", 30)
    assert params["auto_advance"] is False and "days_until_due" not in params
    assert params["metadata"] == {"billctl_invoice": INV.number, "tenant_id": "acme", "period": "2026-10"}
    assert params["currency"] == "usd" and params["pending_invoice_items_behavior"] == "exclude"
    # Stripe adds nothing: no inherited customer discount (the empty string, not an empty list, which
    # the SDK would drop), no automatic tax, nothing discountable
    assert params["discounts"] == "" and params["automatic_tax"] == {"enabled": False}
    assert m.invoice_params(INV, "cus_1", "send_invoice", 14)["days_until_due"] == 14
    usage = m.item_params(INV, INV.lines[1], "cus_1", "in_1")
    assert usage["amount"] == 1500 and usage["invoice"] == "in_1" and usage["discountable"] is False
    assert usage["description"] == "Usage: 25,000 weighted units, 10,000 included [15,000 × 0.001 USD]"
    assert usage["metadata"] == {"billctl_invoice": INV.number, "billctl_line": "2", "kind": "usage"}
    october = usage["period"]
    assert datetime.fromtimestamp(october["end"], UTC) == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    adjustment = m.item_params(INV, INV.lines[2], "cus_1", "in_1")["period"]
    assert datetime.fromtimestamp(adjustment["start"], UTC) == datetime(2026, 9, 1, tzinfo=UTC)
    # a plan segment's line carries the segment's own service period, not the whole month
    segment = replace(
        INV.lines[0],
        service_start=datetime(2026, 10, 16, tzinfo=UTC),
        service_end=datetime(2026, 11, 1, tzinfo=UTC),
    )
    period = m.item_params(INV, segment, "cus_1", "in_1")["period"]
    assert datetime.fromtimestamp(period["start"], UTC) == datetime(2026, 10, 16, tzinfo=UTC)
    assert datetime.fromtimestamp(period["end"], UTC) == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)


def _items(amounts: dict[int, int], number: str = INV.number) -> list[dict]:
    return [
        {"id": f"ii_{p}", "amount": a, "currency": "usd", "metadata": {m.META_INVOICE: number, m.META_LINE: f"{p}"}}
        for p, a in amounts.items()
    ]


def _draft(total: int = 4400, subtotal: int = 4400, **extra: object) -> dict:
    return {"id": "in_1", "status": "draft", "currency": "usd", "subtotal": subtotal, "total": total, **extra}


def test_a_matching_draft_has_no_differences():
    assert m.draft_differences(INV, _draft(), _items({1: 2900, 2: 1500, 3: 0})) == []


def test_every_difference_of_a_draft_is_spelled_out():
    discounted = _draft(
        total=3960,
        total_discount_amounts=[{"amount": 440, "discount": "di_1"}],
        discounts=["di_1"],
    )
    assert m.draft_differences(INV, discounted, _items({1: 2900, 2: 1500, 3: 0})) == [
        "Stripe discounts of 4.40 USD (di_1)",
        "total 39.60 USD instead of 44.00 USD",
    ]
    taxed = _draft(total=4840, total_taxes=[{"amount": 440}], automatic_tax={"enabled": True})
    assert m.draft_differences(INV, taxed, _items({1: 2900, 2: 1500, 3: 0})) == [
        "Stripe tax of 4.40 USD (billctl's tax is its own line)",
        "Stripe's automatic tax is on",
        "total 48.40 USD instead of 44.00 USD",
    ]
    items = _items({1: 2900, 2: 1400, 4: 100}) + _items({2: 100}) + [{"id": "ii_x", "amount": 5, "metadata": {}}]
    diffs = m.draft_differences(INV, _draft(total=4505, subtotal=4505), items)
    assert diffs == [
        "line 2 is there 2 times (ii_2, ii_2)",
        "line 3 (adjustment) is missing",
        "items for lines [4], which the invoice does not have",
        "items billctl did not add: ii_x",
        "subtotal 45.05 USD instead of 44.00 USD",
        "total 45.05 USD instead of 44.00 USD",
    ]
    changed = m.draft_differences(INV, _draft(), _items({1: 2900, 2: 1499, 3: 0}))
    assert changed == ["line 2 (usage) is 14.99 USD instead of 15.00 USD"]
    assert m.draft_differences(INV, _draft(currency="eur"), _items({1: 2900, 2: 1500, 3: 0}))[0] == (
        "currency EUR instead of USD"
    )


def test_customer_balance_is_not_a_difference():
    final = {"status": "open", "total": 4400, "amount_due": 4100, "starting_balance": -300}
    assert m.balance_applied(final) == -300
    assert m.balance_applied({**final, "amount_due": 4400}) == 0
    assert m.balance_applied({"status": "draft", "total": 4400, "amount_due": 0}) == 0


def test_customer_rules():
    wanted = m.customer_params("acme", "Acme", "billing@acme.test")
    assert m.customer_changes({**wanted, "id": "cus_1"}, wanted) == {}
    remote = {"name": "Old", "email": "billing@acme.test", "metadata": {"tenant_id": "acme", "other": "x"}}
    assert m.customer_changes(remote, wanted) == {"name": "Acme", "metadata": {"billctl": "tenant"}}
    assert m.customer_search_query("o'neil") == "metadata['tenant_id']:'o\\'neil'"
    found = [
        {"id": "cus_b", "created": 2, "metadata": {"tenant_id": "acme"}},
        {"id": "cus_a", "created": 1, "metadata": {"tenant_id": "acme"}},
        {"id": "cus_c", "created": 0, "metadata": {"tenant_id": "acme-2"}},
    ]
    best, count = m.pick_customer(found, "acme")
    assert best["id"] == "cus_a" and count == 2


def test_payment_state_and_ordering():
    assert m.payment_state({"status": "open", "attempt_count": 0}).status == "open"
    failed = m.payment_state(
        {"status": "open", "attempt_count": 2, "amount_remaining": 10, "next_payment_attempt": 1_800_000_000},
    )
    assert failed.status == "payment_failed" and failed.attempt_count == 2 and failed.next_payment_attempt.year == 2027
    assert m.payment_state({"status": "open"}, "invoice.payment_failed").status == "payment_failed"
    assert m.payment_state({"status": "paid", "attempt_count": 3}).status == "paid"
    assert m.newer(None, None, 5, "open")
    assert not m.newer(10, "paid", 9, "open")  # older event
    assert not m.newer(10, "paid", 10, "open")  # same second: no step back
    assert m.newer(10, "open", 10, "paid")
    assert m.newer(10, "uncollectible", 11, "paid")
    assert m.below_minimum("usd", 49) and not m.below_minimum("usd", 50) and not m.below_minimum("usd", 0)


def _local(
    number: str, total: int = 4400, status: str = "finalized", sid: str | None = "in_1", paid: str | None = "paid"
):  # type: ignore[no-untyped-def]
    return m.LocalInvoice(number, "acme", "USD", total, status, sid, paid)


def _remote(id_: str, number: str, total: int = 4400, status: str = "paid", created: int = 1) -> dict:
    return {
        "id": id_,
        "metadata": {"billctl_invoice": number},
        "total": total,
        "currency": "usd",
        "status": status,
        "created": created,
    }


def test_reconcile_diff():
    assert m.reconcile([_local("A")], [_remote("in_1", "A")]) == []
    kinds = lambda drifts: sorted((d.number, d.kind) for d in drifts)  # noqa: E731
    assert kinds(m.reconcile([_local("A", sid=None, paid=None)], [])) == [("A", "missing")]
    assert kinds(m.reconcile([_local("A")], [_remote("in_1", "A"), _remote("in_2", "A", created=2)])) == [
        ("A", "duplicate")
    ]
    assert kinds(m.reconcile([_local("A")], [_remote("in_1", "A", total=4000)])) == [("A", "amount")]
    assert kinds(m.reconcile([_local("A")], [_remote("in_1", "A", status="void")])) == [("A", "status")]
    assert kinds(m.reconcile([_local("A", paid="payment_failed")], [_remote("in_1", "A")])) == [("A", "status")]
    assert kinds(m.reconcile([_local("A", status="void", paid="void")], [_remote("in_1", "A", status="void")])) == []
    assert kinds(m.reconcile([_local("A", sid=None)], [_remote("in_1", "A")])) == [("A", "id")]
    assert kinds(m.reconcile([_local("A")], [_remote("in_1", "A", status="draft")])) == [("A", "incomplete")]
    assert kinds(m.reconcile([], [_remote("in_9", "Z")])) == [("Z", "orphan")]


@pytest.mark.parametrize(
    ("currency", "factor", "shown"),
    [("USD", 1, "17.00 USD"), ("JPY", 1, "1,700 JPY"), ("KWD", 1, "1.700 KWD"), ("ISK", 1, "17.00 ISK"),
     ("UGX", 100, "1,700 UGX")],
)
def test_credit_note_amounts_go_to_stripe_in_its_units_and_are_compared_in_them(currency, factor, shown):
    """Local credit notes hold billctl's minor units; Stripe's API takes UGX ×100 (whole shillings
    as two-decimal amounts). Params, settlement and the reconcile comparison all convert."""
    from billctl.core.money import MoneyError
    from billctl.stripe import credit_notes as cn

    note = cn.CreditNoteIn(
        "CN-1", "INV-1", "acme", currency, 1600, "outage", "refund",
        (cn.NoteLineIn("line", 2, "usage", 1500), cn.NoteLineIn("amount", None, "goodwill", 100)),
    )
    params = cn.credit_note_params(note, "in_1", {2: "il_2"}, amount_remaining=1000)  # 1000 due: 600 refunded
    assert [x.get("amount", x.get("unit_amount")) for x in params["lines"]] == [1500 * factor, 100 * factor]
    assert params["refund_amount"] == 600 * factor
    local = cn.LocalCreditNote("CN-1", "INV-1", "acme", currency, 1600, "cn_1", True)
    remote = {"id": "cn_1", "total": 1600 * factor, "status": "issued", "metadata": {cn.META_CREDIT_NOTE: "CN-1"}}
    assert cn.reconcile([local], [remote]) == []
    (drift,) = cn.reconcile([local], [{**remote, "total": 1700 * factor}])
    assert drift.kind == "amount" and drift.detail.endswith(f"Stripe {shown}")
    if currency in ("KWD", "ISK"):  # an amount Stripe refuses in the currency is never sent
        with pytest.raises(MoneyError, match=f"Stripe charges {currency}"):
            cn.credit_note_params(replace(note, lines=(cn.NoteLineIn("amount", None, "x", 1605),)), "in_1", {}, 0)


# ---------------------------------------------------------------- throttle


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_throttle_never_exceeds_rate_and_nearly_reaches_it():
    for rate in (1, 7, 25, 100):
        clock = FakeClock()
        throttle = Throttle(rate, clock=clock, sleep=clock.sleep)
        sent = []
        for _ in range(rate * 10):
            throttle.acquire()
            sent.append(clock.t)
        assert max_in_window(sent) <= rate
        achieved = (len(sent) - 1) / (sent[-1] - sent[0])
        assert 0.94 * rate <= achieved <= rate, (rate, achieved)  # the margin costs about 5 %


def test_throttle_after_idle_does_not_burst():
    clock = FakeClock()
    throttle = Throttle(10, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(5):
        throttle.acquire()
        sent.append(clock.t)
    clock.t += 30  # idle
    for _ in range(30):
        throttle.acquire()
        sent.append(clock.t)
    assert max_in_window(sent) <= 10


def test_throttle_over_http_with_threads():
    """A burst from 4 threads against FakeStripe, which itself enforces the same limit: the server
    log never shows more than the limit in any one-second window, and no 429 came back."""
    from billctl.stripe.client import Gateway
    from billctl.stripe.keys import StripeSettings
    from tests.fakestripe import FakeStripe

    rate = 20
    with FakeStripe(rate_limit=rate) as fake:
        settings = StripeSettings("sk_test_throttle123456", fake.url, rate, 3, "charge_automatically", 30, "test")
        gw = Gateway(settings)

        def burst() -> None:
            for _ in range(15):
                gw.list_events({"limit": 1})

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = list(fake.request_log)
    assert len(log) == 60 and all(r.status == 200 for r in log)
    arrivals = sorted(r.received for r in log)
    assert max_in_window(arrivals) <= rate
    span = arrivals[-1] - arrivals[0]
    assert (len(log) - 1) / span >= 0.9 * rate
