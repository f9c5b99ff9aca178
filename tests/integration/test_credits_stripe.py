"""Prepaid credits and Stripe (issue 13, phase 2b), on SQLite and PostgreSQL, against FakeStripe over
HTTP: credit lines pushed as negative, non-discountable items (Stripe's total is billctl's, a customer
coupon changes nothing); `credits purchase`: a one-off Stripe invoice, the grant made once when Stripe
reports it paid (push, sync-status, webhook, all of them), void and uncollectible, no key, dry run,
a crash between any two Stripe calls then `stripe push`."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    SimulatedCrash,
    crash_after,
    make_app,
    setup_tenants,
    stripe_env,
    stripe_invoices_for,
    stripe_items_for,
    table_counts,
)

NUMBER = "INV-2026-10-000001"
pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def _rows(db_url: str, query: str, **params: object) -> list[dict]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text(query), params).mappings()]
    engine.dispose()
    return rows


def _purchase_invoices(fake: FakeStripe, purchase_id: int) -> list[dict]:
    return [i for i in fake.invoices.values() if i["metadata"].get("billctl_credit_purchase") == str(purchase_id)]


def _grants(db_url: str) -> list[dict]:
    return _rows(db_url, "SELECT * FROM credit_grant ORDER BY id")


def _balance(db_url: str, tenant: str = "acme") -> int:
    rows = _rows(
        db_url,
        "SELECT COALESCE(SUM(l.amount_minor), 0) AS b FROM credit_ledger l JOIN tenant t ON t.id = l.tenant_id "
        "WHERE t.key = :k",
        k=tenant,
    )
    return int(rows[0]["b"])


# ---------------------------------------------------------------- credit lines on invoices


def _add_credit_lines(db_url: str, number: str, grants: list[tuple[int, int]]) -> int:
    """Give a finalized invoice credit lines (grant id, amount drawn in minor units) after its lines, as
    finalize does with credits: negative lines, the grant in their detail, the total lowered. Returns
    the new total."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        inv = conn.execute(sa.text("SELECT id, total_minor FROM invoice WHERE number = :n"), {"n": number}).one()
        last = conn.execute(sa.text("SELECT MAX(position) FROM invoice_line WHERE invoice_id = :i"), {"i": inv.id})
        position = int(last.scalar() or 0)
        total = inv.total_minor
        for grant, drawn in grants:
            position += 1
            conn.execute(
                sa.text(
                    "INSERT INTO invoice_line (invoice_id, position, kind, description, quantity, unit_price, "
                    "amount_minor, unrounded, detail) VALUES (:i, :p, 'credit', :d, '1', NULL, :a, :u, :detail)"
                ),
                {
                    "i": inv.id,
                    "p": position,
                    "d": f"Prepaid credit: top-up (grant {grant})",
                    "a": -drawn,
                    "u": str(-drawn / 100),
                    "detail": json.dumps({"grant_id": grant, "credit_kind": "purchased", "applies": "after tax"}),
                },
            )
            total -= drawn
        conn.execute(sa.text("UPDATE invoice SET total_minor = :t WHERE id = :i"), {"t": total, "i": inv.id})
    engine.dispose()
    return total


def test_credit_lines_are_negative_non_discountable_items_and_a_coupon_changes_nothing(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])  # 25,000 units: 29.00 + 15.00 = 44.00
    cli("credits", "grant", "acme", "--amount", "10", "--kind", "promotional", "--reason", "sign-up")
    cli("credits", "grant", "acme", "--amount", "5.25", "--kind", "purchased", "--reason", "top-up")
    total = _add_credit_lines(db_url, NUMBER, [(1, 1000), (2, 525)])
    assert total == 4400 - 1525
    cli.env.update(stripe_env(fake))
    cli("stripe", "sync-customers")
    client = fake.client(TEST_KEY)
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "forever"})
    (customer,) = fake.customers
    fake.give_customer_discount(customer, coupon.id)

    doc = cli("stripe", "push", "-o", "json").json()
    (pushed,) = doc["invoices"]
    assert pushed["action"] == "pushed" and pushed["total"]["minor"] == total
    (remote,) = stripe_invoices_for(fake, NUMBER)
    assert (remote["subtotal"], remote["total"]) == (total, total)  # Stripe's total is billctl's
    assert remote["discounts"] == [] and remote["total_discount_amounts"] == []
    items = sorted(stripe_items_for(fake, remote["id"]), key=lambda i: int(i["metadata"]["billctl_line"]))
    assert all(i["discountable"] is False for i in items)
    credits = [i for i in items if i["metadata"]["kind"] == "credit"]
    assert [(i["amount"], i["metadata"]["billctl_credit_grant"]) for i in credits] == [(-1000, "1"), (-525, "2")]
    assert sum(i["amount"] for i in items) == total


def test_a_credit_item_changed_in_stripe_stops_the_finalize(cli, tmp_path, fake, db_url):
    """The draft check counts credit lines: an item that lost its grant (or became discountable) is a
    difference, and the draft is not finalized."""
    from billctl.services import stripe_sync as svc

    setup_tenants(cli, tmp_path, ["acme"])
    cli("credits", "grant", "acme", "--amount", "10", "--kind", "promotional", "--reason", "sign-up")
    _add_credit_lines(db_url, NUMBER, [(1, 1000)])
    app = make_app(db_url, fake)

    def crash_before_finalize(label: str) -> None:  # the draft and its items are made, not finalized
        if label == "retrieve invoice":
            raise SimulatedCrash(label)

    with pytest.raises(SimulatedCrash):
        svc.push(app, svc.gateway(app, on_call=crash_before_finalize))
    (remote,) = stripe_invoices_for(fake, NUMBER)
    credit = next(i for i in stripe_items_for(fake, remote["id"]) if i["metadata"].get("kind") == "credit")
    fake.client(TEST_KEY).v1.invoice_items.update(credit["id"], params={"metadata": {"billctl_credit_grant": "9"}})
    report = svc.push(app, svc.gateway(app))
    (failed,) = report.failures
    assert "names grant 9 instead of 1" in failed.note
    assert fake.invoices[remote["id"]]["status"] == "draft"
    app.dispose()


# ---------------------------------------------------------------- credits purchase


def test_purchase_charged_at_once_grants_once(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"], units=0, finalize=False)
    cli.env.update(stripe_env(fake))
    doc = cli(
        "credits",
        "purchase",
        "acme",
        "--amount",
        "500",
        "--reason",
        "top-up Q4",
        "--expires",
        "2027-11-01",
        "-o",
        "json",
    ).json()
    assert doc["purchase"]["status"] == "paid" and doc["stripe"]["status"] == "paid" and doc["grant"] == 1
    assert doc["purchase"]["amount"] == {"minor": 50000, "currency": "USD", "decimal": "500.00"}
    (remote,) = _purchase_invoices(fake, doc["purchase"]["id"])
    assert "Prepaid credits purchase" in remote["description"] and "usage in" not in remote["description"]
    assert remote["automatic_tax"]["enabled"] is False and remote["total"] == 50000
    (item,) = stripe_items_for(fake, remote["id"])
    assert item["amount"] == 50000 and item["discountable"] is False
    (grant,) = _grants(db_url)
    assert grant["kind"] == "purchased" and grant["purchase_id"] == doc["purchase"]["id"]
    assert grant["amount_minor"] == 50000 and grant["expires_at"] is not None
    # Stripe's events of that payment, read later, grant nothing more
    assert cli("stripe", "sync-status", "-o", "json").json()["events"] > 0
    assert len(_grants(db_url)) == 1 and _balance(db_url) == 50000
    (row,) = _rows(db_url, "SELECT * FROM credit_purchase")
    assert row["status"] == "paid" and row["stripe_invoice_id"] == remote["id"] and row["stripe_status"] == "paid"
    ledger = cli("credits", "ledger", "acme", "-o", "json").json()
    assert [e["kind"] for e in ledger["entries"]] == ["grant"]
    # nothing pending: stripe push has nothing to do for it
    assert cli("stripe", "push", "-o", "json").json()["credit_purchases"] == []


def test_purchase_paid_later_through_sync_status_and_webhook_grants_once(cli, tmp_path, fake, db_url):
    from billctl.services.stripe_webhooks import handle

    setup_tenants(cli, tmp_path, ["acme"], units=0, finalize=False)
    cli.env.update(stripe_env(fake, BILLCTL_STRIPE_COLLECTION_METHOD="send_invoice"))
    doc = cli("credits", "purchase", "acme", "--amount", "120.50", "--reason", "top-up", "-o", "json").json()
    assert doc["purchase"]["status"] == "pending" and doc["stripe"]["status"] == "open" and doc["grant"] is None
    assert _grants(db_url) == []
    (remote,) = _purchase_invoices(fake, 1)
    fake.client(TEST_KEY).v1.invoices.pay(remote["id"], params={"paid_out_of_band": True})

    # the webhook receiver gets the paid event first, twice; then sync-status reads every event
    app = make_app(db_url, fake)
    secret = fake.webhook_secret
    paid = [e for e in fake.events if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == remote["id"]]
    assert paid
    payload = json.dumps(paid[0]).encode()
    for _ in range(2):
        status, body, _change = handle(app, secret, payload, fake.sign(payload))
        assert status == 200
    assert body["duplicate"] is True
    assert len(_grants(db_url)) == 1 and _balance(db_url) == 12050
    cli("stripe", "sync-status")
    cli("stripe", "sync-status")
    (grant,) = _grants(db_url)
    assert grant["purchase_id"] == 1 and _balance(db_url) == 12050
    assert _rows(db_url, "SELECT status FROM credit_purchase") == [{"status": "paid"}]
    app.dispose()


@pytest.mark.parametrize("outcome", ["void", "uncollectible"])
def test_void_or_uncollectible_purchase_grants_nothing(cli, tmp_path, fake, db_url, outcome):
    setup_tenants(cli, tmp_path, ["acme"], units=0, finalize=False)
    cli.env.update(stripe_env(fake, BILLCTL_STRIPE_COLLECTION_METHOD="send_invoice"))
    cli("credits", "purchase", "acme", "--amount", "50", "--reason", "top-up")
    (remote,) = _purchase_invoices(fake, 1)
    client = fake.client(TEST_KEY)
    if outcome == "void":
        client.v1.invoices.void_invoice(remote["id"])
    else:
        client.v1.invoices.mark_uncollectible(remote["id"])
    doc = cli("stripe", "sync-status", "-o", "json").json()
    assert [c["after"] for c in doc["changes"] if c["invoice"] == "credit-purchase-1"][-1] == outcome
    assert _grants(db_url) == [] and _balance(db_url) == 0
    assert _rows(db_url, "SELECT status FROM credit_purchase") == [{"status": outcome}]
    if outcome == "uncollectible":  # Stripe still takes a payment of an uncollectible invoice: granted then
        client.v1.invoices.pay(remote["id"], params={"paid_out_of_band": True})
        cli("stripe", "sync-status")
        assert len(_grants(db_url)) == 1 and _balance(db_url) == 5000


def test_purchase_without_a_stripe_key_and_bad_input_write_nothing(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"], units=0, finalize=False)
    before = table_counts(db_url)
    refused = cli("credits", "purchase", "acme", "--amount", "50", "--reason", "top-up", expect=4)
    assert "Stripe" in refused.stderr and "credits grant --kind purchased" in refused.stderr
    cli.env.update(stripe_env(fake))
    cli("credits", "purchase", "acme", "--amount", "-5", "--reason", "top-up", expect=3)
    cli("credits", "purchase", "acme", "--amount", "5", "--reason", "", expect=3)
    cli("credits", "purchase", "nobody", "--amount", "5", "--reason", "top-up", expect=3)
    assert table_counts(db_url) == before
    assert [r.method for r in fake.request_log if r.method != "GET"] == []


def test_purchase_dry_run_writes_nothing_anywhere(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"], units=0, finalize=False)
    cli.env.update(stripe_env(fake))
    before = table_counts(db_url)
    doc = cli("credits", "purchase", "acme", "--amount", "500", "--reason", "top-up", "--dry-run", "-o", "json").json()
    assert doc["dry_run"] is True and doc["stripe"]["action"] == "pushed" and doc["grant"] is None
    assert table_counts(db_url) == before
    assert [r.method for r in fake.request_log if r.method != "GET"] == []
    assert fake.invoices == {} and fake.customers == {}
    text = cli("credits", "purchase", "acme", "--amount", "500", "--reason", "top-up", "--dry-run")
    assert "would issue" in text.stderr + text.stdout


@pytest.mark.parametrize("later", [False, True], ids=["minutes-later", "days-later"])
def test_purchase_crash_between_any_two_calls_then_stripe_push(cli, tmp_path, db_url, later):
    """Kill the purchase right after each Stripe call in turn; `stripe push` (at once, or two days
    later when Stripe has forgotten the idempotency keys) completes it: one Stripe invoice with one
    item per purchase, and one grant once it is paid."""
    from billctl.services.credits import purchase_flow

    with FakeStripe(api_key_prefix="sk_test_billctl", search_lag_seconds=60) as fake:
        tenants = [f"t{i:02d}" for i in range(10)]
        setup_tenants(cli, tmp_path, tenants, units=0, finalize=False)
        cli.env.update(stripe_env(fake))
        app = make_app(db_url, fake)
        request = purchase_flow.PurchaseRequest(amount="10", reason="top-up")
        monkey = pytest.MonkeyPatch()
        real_gateway = purchase_flow.gateway

        def with_hook(hook):  # type: ignore[no-untyped-def]
            monkey.setattr(purchase_flow, "gateway", lambda a, **kw: real_gateway(a, on_call=hook, **kw))

        probe = crash_after(10_000)  # a clean purchase counts the calls: customer, invoice, item, finalize
        with_hook(probe)
        purchase_flow.purchase_credits(app, "t00", request)
        calls = list(probe.calls)
        assert calls[0] == "search customers" and calls[-1] == "finalize invoice", calls
        assert "create invoice item" in calls and len(calls) < len(tenants), calls
        for n in range(1, len(calls) + 1):
            with_hook(crash_after(n))
            with pytest.raises(SimulatedCrash):
                purchase_flow.purchase_credits(app, tenants[n], request)
            if later:
                fake.advance(2 * 86400)  # the idempotency keys are forgotten, search has caught up
            doc = cli("stripe", "push", "-o", "json").json()
            (done,) = doc["credit_purchases"]
            assert done["tenant"] == tenants[n], (n, doc)
            assert done["action"] in ("pushed", "completed", "already in stripe"), (n, doc)
            assert cli("stripe", "push", "-o", "json").json()["credit_purchases"] == []
        monkey.undo()
        purchases = _rows(db_url, "SELECT * FROM credit_purchase ORDER BY id")
        assert len(purchases) == len(calls) + 1
        for p in purchases:
            (remote,) = _purchase_invoices(fake, p["id"])
            assert remote["status"] == "paid" and p["stripe_invoice_id"] == remote["id"]
            assert [i["amount"] for i in stripe_items_for(fake, remote["id"])] == [1000]
            assert p["status"] == "paid"
        grants = _grants(db_url)
        assert sorted(g["purchase_id"] for g in grants) == [p["id"] for p in purchases]
        for key in tenants[: len(calls) + 1]:
            assert len([c for c in fake.customers.values() if c["metadata"].get("tenant_id") == key]) == 1
        assert fake.server_errors == []
        app.dispose()
