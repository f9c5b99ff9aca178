"""The pure Stripe rules (no servers) and the throttle (a fake clock, then real HTTP to FakeStripe)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks.common import max_in_window  # noqa: E402
from billctl.stripe import mapping as m  # noqa: E402
from billctl.stripe.throttle import Throttle  # noqa: E402

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


def test_idempotency_keys_are_deterministic_per_step():
    assert m.invoice_key(INV.number, "create") == "billctl-inv-INV-2026-10-000007-create"
    assert m.item_key(INV.number, 2) == "billctl-inv-INV-2026-10-000007-item-2"
    assert m.invoice_key(INV.number, "finalize") != m.invoice_key(INV.number, "create")
    assert m.customer_create_key("acme") == m.customer_create_key("acme") != m.customer_create_key("globex")
    assert m.customer_update_key("acme", {"name": "A"}) != m.customer_update_key("acme", {"name": "B"})
    assert " " not in m.customer_create_key("odd key/with spaces")


def test_invoice_and_item_params():
    params = m.invoice_params(INV, "cus_1", "charge_automatically", 30)
    assert params["auto_advance"] is False and "days_until_due" not in params
    assert params["metadata"] == {"billctl_invoice": INV.number, "tenant_id": "acme", "period": "2026-10"}
    assert params["currency"] == "usd" and params["pending_invoice_items_behavior"] == "exclude"
    assert m.invoice_params(INV, "cus_1", "send_invoice", 14)["days_until_due"] == 14
    usage = m.item_params(INV, INV.lines[1], "cus_1", "in_1")
    assert usage["amount"] == 1500 and usage["invoice"] == "in_1"
    assert usage["description"] == "Usage: 25,000 weighted units, 10,000 included [15,000 × 0.001 USD]"
    assert usage["metadata"] == {"billctl_invoice": INV.number, "billctl_line": "2", "kind": "usage"}
    october = usage["period"]
    assert datetime.fromtimestamp(october["end"], UTC) == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    adjustment = m.item_params(INV, INV.lines[2], "cus_1", "in_1")["period"]
    assert datetime.fromtimestamp(adjustment["start"], UTC) == datetime(2026, 9, 1, tzinfo=UTC)


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
