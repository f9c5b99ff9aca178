"""Payment outcomes (sync-status with a stored cursor, the webhook receiver) and reconcile, against
FakeStripe over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    WEBHOOK_SECRET,
    local_invoice,
    make_app,
    setup_tenants,
    stripe_env,
    stripe_invoices_for,
)

NUMBER = "INV-2026-10-000001"
SECRET = WEBHOOK_SECRET


pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def _audit(db_url: str, action: str) -> list[dict]:
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}).mappings()
        out = [dict(r) for r in rows]
    for row in out:
        if isinstance(row["detail"], str):  # SQLite returns JSON as text to a raw query
            row["detail"] = json.loads(row["detail"])
    engine.dispose()
    return out


def test_payment_failure_retries_then_paid(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    pushed = cli("stripe", "push", "-o", "json").json()
    assert {i["ref"]: i["status"] for i in pushed["invoices"]} == {
        "INV-2026-10-000001": "payment_failed",
        "INV-2026-10-000002": "paid",
    }

    first = cli("stripe", "sync-status", "-o", "json").json()
    assert first["events"] > 0 and first["cursor"]
    (attention,) = first["attention"]
    assert attention["number"] == NUMBER and attention["status"] == "payment_failed"
    assert attention["attempt_count"] == 1 and attention["next_payment_attempt"]
    assert attention["total"]["minor"] == 4400

    # nothing new: the cursor stops a second read of the same events
    again = cli("stripe", "sync-status", "-o", "json").json()
    assert again["events"] == 0 and again["changes"] == [] and len(again["attention"]) == 1

    fake.advance(3 * 86400 + 1)  # Stripe retries the card: fails again
    second = cli("stripe", "sync-status", "-o", "json").json()
    assert second["changes"] == []  # still payment_failed: no status change, but one more attempt
    assert [(a["number"], a["attempt_count"]) for a in second["attention"]] == [(NUMBER, 2)]
    assert local_invoice(db_url, NUMBER)["stripe_attempt_count"] == 2

    fake.set_payment_outcome("acme", "succeed")
    fake.advance(3 * 86400 + 1)
    text = cli("stripe", "sync-status")
    assert "paid" in text.stdout and "0 invoice(s) need attention" in text.stderr
    local = local_invoice(db_url, NUMBER)
    assert local["stripe_status"] == "paid" and local["stripe_next_payment_attempt"] is None
    changes = _audit(db_url, "stripe.invoice.status")
    assert changes and changes[-1]["object_id"] == NUMBER and changes[-1]["detail"]["after"] == "paid"


def test_uncollectible_and_void_in_stripe(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("*", "fail")
    cli("stripe", "push")
    client = fake.client(TEST_KEY)
    (one,) = stripe_invoices_for(fake, "INV-2026-10-000001")
    (two,) = stripe_invoices_for(fake, "INV-2026-10-000002")
    client.v1.invoices.mark_uncollectible(one["id"])
    client.v1.invoices.void_invoice(two["id"])
    doc = cli("stripe", "sync-status", "-o", "json").json()
    assert [a["number"] for a in doc["attention"]] == ["INV-2026-10-000001"]
    assert local_invoice(db_url, "INV-2026-10-000001")["stripe_status"] == "uncollectible"
    assert local_invoice(db_url, "INV-2026-10-000002")["stripe_status"] == "void"


def test_sync_status_dry_run_writes_nothing(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push")
    fake.set_payment_outcome("acme", "succeed")
    fake.advance(3 * 86400 + 1)
    dry = cli("stripe", "sync-status", "--dry-run", "-o", "json").json()
    assert dry["changes"][-1]["after"] == "paid"
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "payment_failed"
    real = cli("stripe", "sync-status", "-o", "json").json()
    assert real["changes"] == dry["changes"]


# ---------------------------------------------------------------- webhooks


@pytest.fixture
def receiver(db_url, fake, cli, tmp_path):  # type: ignore[no-untyped-def]
    from billctl.services.stripe_webhooks import WebhookServer

    setup_tenants(cli, tmp_path, ["acme", "globex"])
    app = make_app(db_url, fake)
    server = WebhookServer(app, SECRET)
    server.start_background()
    yield server
    server.shutdown()
    server.server_close()
    app.dispose()


def _post(url: str, payload: bytes, signature: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_webhooks_end_to_end_and_deduplicated(receiver, fake, cli, db_url):
    fake.add_webhook_endpoint(receiver.url + "/stripe/webhooks")
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push")
    assert fake.wait_for_webhooks(10)
    assert fake.webhook_deliveries and all(d.status == 200 for d in fake.webhook_deliveries)
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "payment_failed"
    assert local_invoice(db_url, "INV-2026-10-000002")["stripe_status"] == "paid"
    applied = len(_audit(db_url, "stripe.invoice.status"))

    # a redelivery of the same event is acknowledged and ignored
    event = next(e for e in fake.events if e["type"] == "invoice.payment_failed")
    payload = json.dumps(event).encode()
    status, body = _post(receiver.url, payload, fake.sign(payload))
    assert status == 200 and body["duplicate"] is True

    # sync-status afterwards sees the same events as already applied: no change applied twice
    doc = cli("stripe", "sync-status", "-o", "json").json()
    assert doc["changes"] == []
    assert len(_audit(db_url, "stripe.invoice.status")) == applied


def test_webhook_signature_rejections(receiver, fake, db_url, cli):
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push", "--tenant", "acme")
    event = next(e for e in fake.events if e["type"] == "invoice.payment_failed")
    paid = json.loads(json.dumps(event))
    paid["id"] = "evt_forged"
    paid["type"] = "invoice.paid"
    paid["created"] = event["created"] + 10
    paid["data"]["object"]["status"] = "paid"
    payload = json.dumps(paid).encode()

    cases = {
        "no header": None,
        "wrong secret": FakeStripe(webhook_secret="whsec_someoneelse").sign(payload),
        "tampered body": fake.sign(payload + b" "),
        "replayed, 10 minutes old": fake.sign(payload, timestamp=int(time.time()) - 600),
    }
    for name, signature in cases.items():
        status, body = _post(receiver.url, payload, signature)
        assert status == 400, name
        assert "error" in body, name
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "payment_failed"  # nothing applied

    status, body = _post(receiver.url, payload, fake.sign(payload))
    assert status == 200 and body == {"received": True, "duplicate": False, "applied": True}
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "paid"
    status, body = _post(receiver.url, b"not json", fake.sign(b"not json"))
    assert status == 400


def test_webhook_without_secret_is_a_config_error(cli, tmp_path, fake):
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli.env.update(stripe_env(fake))
    result = cli("stripe", "webhooks", "serve", "--port", "0", expect=4)
    assert "webhook signing secret" in result.stderr


def test_out_of_order_events_never_step_back(cli, tmp_path, fake, db_url):
    from billctl.services.stripe_sync import apply_event

    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    cli("stripe", "push")  # paid at once
    app = make_app(db_url, fake)
    finalized = next(e for e in fake.events if e["type"] == "invoice.finalized")
    stale = json.loads(json.dumps(finalized))
    stale["id"] = "evt_stale"
    stale["created"] -= 5
    from sqlmodel import Session

    with Session(app.engine) as session, session.begin():
        change = apply_event(session, app, stale, "webhook")
    assert not change.applied
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "paid"


# ---------------------------------------------------------------- reconcile


def test_reconcile_reports_drift_and_fixes_only_when_asked(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex", "initech"])
    cli.env.update(stripe_env(fake))
    cli("stripe", "push", "--tenant", "acme")
    cli("stripe", "push", "--tenant", "globex")
    # initech never pushed: missing
    agree = cli("stripe", "reconcile", "--tenant", "acme")
    assert "agree" in agree.stderr

    client = fake.client(TEST_KEY)
    (acme,) = stripe_invoices_for(fake, "INV-2026-10-000001")
    # a second Stripe invoice for the same local one (made by hand): duplicate, and amount differs
    dup = client.v1.invoices.create(
        params={"customer": acme["customer"], "currency": "usd", "metadata": {"billctl_invoice": "INV-2026-10-000001"}}
    )
    client.v1.invoice_items.create(params={"customer": acme["customer"], "invoice": dup.id, "amount": 100})
    client.v1.invoices.finalize_invoice(dup.id, params={"auto_advance": False})
    # globex voided in Stripe behind billctl's back: status drift
    fake.set_payment_outcome("globex", "fail")
    (globex,) = stripe_invoices_for(fake, "INV-2026-10-000002")
    before = local_invoice(db_url, "INV-2026-10-000002")["stripe_status"]

    result = cli("stripe", "reconcile", "-o", "json", expect=10)
    kinds = {(d["invoice"], d["drift"]) for d in result.json()["drift"]}
    assert ("INV-2026-10-000001", "duplicate") in kinds
    assert ("INV-2026-10-000003", "missing") in kinds
    assert local_invoice(db_url, "INV-2026-10-000002")["stripe_status"] == before  # read only

    # status drift: Stripe says void, billctl recorded paid
    fake.state.invoices[globex["id"]]["status"] = "void"
    doc = cli("stripe", "reconcile", "--tenant", "globex", "-o", "json", expect=10).json()
    assert [(d["drift"], d["detail"]) for d in doc["drift"]] == [("status", "local finalized, Stripe void")]
    table = cli("stripe", "reconcile", expect=10)
    assert "duplicate" in table.stdout and "difference(s)" in table.stderr


def test_cursor_event_gone_falls_back_to_its_time(cli, tmp_path, fake, db_url):
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push")
    cli("stripe", "sync-status")
    fake.set_payment_outcome("acme", "succeed")
    fake.advance(3 * 86400 + 1)
    engine = create_db_engine(db_url)
    with engine.begin() as conn:  # as if Stripe had dropped the cursor's event (older than 30 days)
        conn.execute(sa.text("UPDATE stripe_cursor SET event_id = 'evt_expired'"))
    engine.dispose()
    doc = cli("stripe", "sync-status", "-o", "json").json()
    assert [(c["invoice"], c["after"]) for c in doc["changes"]] == [(NUMBER, "paid")]
    assert doc["attention"] == []


def test_webhooks_serve_command_end_to_end(cli, tmp_path, fake, db_url):
    import os
    import signal
    import socket
    import subprocess

    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BILLCTL_", "STRIPE_"))},
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "NO_COLOR": "1",
    }
    billctl = str(Path(sys.executable).with_name("billctl"))
    server = subprocess.Popen(
        [billctl, "--database-url", db_url, "stripe", "webhooks", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening on" in server.stderr.readline()
        fake.add_webhook_endpoint(f"http://127.0.0.1:{port}/")
        fake.set_payment_outcome("acme", "succeed")
        fake.advance(3 * 86400 + 1)  # Stripe retries the card: paid, and tells the endpoint
        assert fake.wait_for_webhooks(10)
        assert {d.status for d in fake.webhook_deliveries} == {200}
        assert local_invoice(db_url, NUMBER)["stripe_status"] == "paid"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0
    assert "invoice.paid" in err and "payment_failed -> paid" in err and "stopped" in err
    assert SECRET not in err
