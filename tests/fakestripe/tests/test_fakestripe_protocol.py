"""FakeStripe's protocol behaviour through the real SDK: parameter validation against stripe.params,
idempotency (replay, mismatch, in flight, expiry), faults, rate limit, events and webhook signatures."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import stripe
from stripe import StripeClient

from tests.fakestripe import FakeStripe
from tests.fakestripe.server import ROUTES
from tests.fakestripe.validation import params_class


def test_every_route_validates_against_an_installed_params_class() -> None:
    """The fake cannot drift from the SDK silently: each route names a TypedDict that must exist in
    the installed ``stripe.params``."""
    for method, pattern, class_name, _handler in ROUTES:
        assert params_class(class_name) is not None, (method, pattern.pattern, class_name)


def test_rejects_what_stripe_rejects(client: StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.create(params={"emial": "a@b.test"})  # type: ignore[typeddict-unknown-key]
    assert info.value.code == "parameter_unknown" and info.value.param == "emial"
    customer = client.v1.customers.create(params={"email": "a@b.test"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "cash"})  # type: ignore[typeddict-item]
    assert info.value.param == "collection_method"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "amount": "12.5", "currency": "usd"}  # type: ignore[typeddict-item]
        )
    assert info.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"limit": 1, "type": "invoice.paid", "types": ["invoice.paid"]})


def test_idempotency_replay_mismatch_and_expiry(fake: FakeStripe, client: StripeClient) -> None:
    opts: Any = {"idempotency_key": "key-1"}
    first = client.v1.customers.create(params={"name": "A"}, options=opts)
    again = client.v1.customers.create(params={"name": "A"}, options=opts)
    assert again.id == first.id and len(fake.customers) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"name": "B"}, options=opts)
    assert fake.forget_idempotency_keys() == 1
    third = client.v1.customers.create(params={"name": "A"}, options=opts)
    assert third.id != first.id and len(fake.customers) == 2
    with FakeStripe(idempotency_ttl_seconds=3600) as short:
        c = short.client()
        one = c.v1.customers.create(params={"name": "A"}, options=opts)
        short.advance(3599)
        assert c.v1.customers.create(params={"name": "A"}, options=opts).id == one.id
        short.advance(1)
        assert c.v1.customers.create(params={"name": "A"}, options=opts).id != one.id


def test_key_in_flight_is_409_should_retry(fake: FakeStripe) -> None:
    fake.inject(method="POST", path_regex="^/v1/customers$", delay=0.5)
    client = fake.client()
    opts: Any = {"idempotency_key": "slow"}
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.setdefault("c", client.v1.customers.create(options=opts)))
    worker.start()
    time.sleep(0.2)
    with pytest.raises(stripe.StripeError) as info:
        client.v1.customers.create(options=opts)
    assert info.value.http_status == 409 and info.value.headers.get("Stripe-Should-Retry") == "true"
    worker.join()
    assert len(fake.customers) == 1


def test_faults_as_the_sdk_sees_them(fake: FakeStripe) -> None:
    client = fake.client(max_network_retries=2)
    fake.inject(path_regex="^/v1/customers$", status=429)  # no Stripe-Should-Retry: the SDK does not retry
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list()
    fake.inject(path_regex="^/v1/customers$", status=429, should_retry=True)
    assert client.v1.customers.list().data == []
    fake.inject(method="POST", path_regex="^/v1/customers$", status=500, after_processing=True)
    customer = client.v1.customers.create(params={"name": "lost answer"})  # retried with the same key
    assert list(fake.customers) == [customer.id]
    fake.inject(method="POST", path_regex="^/v1/customers$", drop_connection=True)
    client.v1.customers.create(params={"name": "dropped"})
    assert len(fake.customers) == 2
    assert [r.status for r in fake.request_log[-2:]] == [None, 200]


def test_random_faults_share(fake: FakeStripe) -> None:
    fake.random_faults(0.2, (429, 503), seed=1)
    client = fake.client()
    answers = []
    for _ in range(300):
        try:
            client.v1.customers.list(params={"limit": 1})
            answers.append(200)
        except stripe.StripeError as exc:
            answers.append(exc.http_status)
    share = sum(1 for a in answers if a != 200) / len(answers)
    assert 0.12 < share < 0.28 and {a for a in answers} == {200, 429, 503}
    fake.random_faults(0)
    client.v1.customers.list()


def test_rate_limit_by_arrival_time() -> None:
    with FakeStripe(rate_limit=5) as fake:
        client = fake.client()
        statuses = []
        for _ in range(8):
            try:
                client.v1.customers.list()
                statuses.append(200)
            except stripe.RateLimitError:
                statuses.append(429)
        assert statuses == [200] * 5 + [429] * 3
        assert all(r.received <= r.timestamp for r in fake.request_log)


def test_events_list_with_cursor(fake: FakeStripe, client: StripeClient) -> None:
    for i in range(5):
        client.v1.customers.create(params={"name": f"c{i}"})
    newest_first = client.v1.events.list(params={"limit": 100}).data
    assert [e.type for e in newest_first] == ["customer.created"] * 5
    oldest = newest_first[-1].id
    newer = client.v1.events.list(params={"ending_before": oldest, "limit": 2})
    assert [e.id for e in newer.data] == [e.id for e in newest_first[-3:-1]] and newer.has_more


def test_webhook_signature_verifies_with_the_sdk(fake: FakeStripe) -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}})
    event = stripe.Webhook.construct_event(payload, fake.sign(payload), fake.webhook_secret)
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        old = fake.sign(payload, timestamp=int(time.time()) - 301)
        stripe.Webhook.construct_event(payload, old, fake.webhook_secret)
