"""Idempotency keys that digest the parameters that matter, against FakeStripe (which replays a key's
first answer and refuses a key reused with other parameters, as Stripe does): edits reach Stripe, a
resend after an edit is never an idempotency_error, and a retry of the same request still acts once."""

from __future__ import annotations

import pytest

from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    assert_exactly_once,
    customers_for,
    setup_tenants,
    stripe_env,
)

pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def _stripe_name(fake: FakeStripe, tenant: str) -> str:
    (customer,) = customers_for(fake, tenant)
    return customer["name"]


def test_a_to_b_to_a_to_b_within_a_day_reaches_stripe_every_time(cli, tmp_path, fake):
    """The update key used to digest only the change: the second "B" replayed the first one's answer
    (Stripe kept "Acme") while billctl printed "updated"."""
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli.env.update(stripe_env(fake))
    cli("stripe", "sync-customers")
    assert _stripe_name(fake, "acme") == "Acme"
    for name in ("B", "Acme", "B", "Acme", "B"):
        cli("tenants", "update", "acme", "--name", name)
        (outcome,) = cli("stripe", "sync-customers", "-o", "json").json()["customers"]
        assert outcome["action"] == "updated"
        assert _stripe_name(fake, "acme") == name
    assert len(customers_for(fake, "acme")) == 1


def test_a_customer_changed_back_in_stripe_is_put_right_again(cli, tmp_path, fake):
    """Someone sets the same wrong name in Stripe twice within a day, with no edit here in between: the
    second correction's key is the first one's, Stripe answers with a replay, and billctl sends it
    again under a fresh key instead of believing it."""
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli.env.update(stripe_env(fake))
    customer_id = cli("stripe", "sync-customers", "-o", "json").json()["customers"][0]["stripe_id"]
    client = fake.client(TEST_KEY)
    for _ in range(2):
        client.v1.customers.update(customer_id, params={"name": "Wrong"})
        (outcome,) = cli("stripe", "sync-customers", "-o", "json").json()["customers"]
        assert outcome["action"] == "updated"
        assert _stripe_name(fake, "acme") == "Acme"
    path = f"/v1/customers/{customer_id}"
    keys = [r.idempotency_key for r in fake.request_log if r.method == "POST" and r.path == path]
    assert any("-again-" in (k or "") for k in keys)


def test_a_customer_create_whose_answer_was_lost_then_edited_makes_one_customer(cli, tmp_path, db_url):
    """Stripe created the customer but every answer was lost; the operator renames the tenant and
    re-runs at once (search has not caught up yet). The create is replayed, not refused with an
    idempotency_error and not duplicated; the new name follows as an update."""
    with FakeStripe(api_key_prefix="sk_test_billctl", search_lag_seconds=60) as fake:
        setup_tenants(cli, tmp_path, ["acme"], finalize=False)
        cli.env.update(stripe_env(fake, BILLCTL_STRIPE_MAX_RETRIES="1"))
        fake.inject(method="POST", path_regex=r"^/v1/customers$", status=500, after_processing=True, times=2)
        failed = cli("stripe", "sync-customers", "-o", "json", expect=6).json()["customers"]
        assert [c["action"] for c in failed] == ["failed"] and len(customers_for(fake, "acme")) == 1
        cli("tenants", "update", "acme", "--name", "Acme Corp", "--email", "ap@acme.test")
        (outcome,) = cli("stripe", "sync-customers", "-o", "json").json()["customers"]
        assert outcome["action"] == "created"
        (customer,) = customers_for(fake, "acme")
        assert (customer["id"], customer["name"], customer["email"]) == (
            outcome["stripe_id"],
            "Acme Corp",
            "ap@acme.test",
        )


def test_an_invoice_create_refused_then_fixed_is_sent_again_at_once(cli, tmp_path, fake, db_url):
    """The invoice create failed (its customer had been deleted in Stripe) and Stripe stored that
    answer under the key. Once sync-customers replaces the customer, push sends the create with the
    new customer: a new key, where the old one would have been an idempotency_error for a day."""
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    deleted = cli("stripe", "sync-customers", "-o", "json").json()["customers"][0]["stripe_id"]
    fake.client(TEST_KEY).v1.customers.delete(deleted)
    first = cli("stripe", "push", "-o", "json", expect=6).json()
    assert "No such customer" in first["failed"][0]["reason"]
    assert cli("stripe", "sync-customers", "-o", "json").json()["customers"][0]["action"] == "created"
    (pushed,) = cli("stripe", "push", "-o", "json").json()["invoices"]
    assert pushed["action"] == "completed", pushed["note"]
    assert_exactly_once(fake, db_url, "INV-2026-10-000001", "acme")
