"""Customers through the real stripe SDK: create, retrieve, update, list, search, delete."""

from __future__ import annotations

import pytest
import stripe
from stripe import StripeClient

from tests.fakestripe import FakeStripe


def test_create_retrieve_update_delete(fake: FakeStripe, client: StripeClient) -> None:
    customer = client.v1.customers.create(params={
        "email": "ops@acme.test", "name": "Acme", "metadata": {"tenant_id": "acme", "plan": "pro"},
        "address": {"country": "DE", "city": "Berlin"}, "preferred_locales": ["de", "en"],
    })
    assert customer.id.startswith("cus_")
    assert customer.object == "customer"
    assert customer.livemode is False
    assert customer.created == fake.now()
    assert customer.metadata.to_dict() == {"tenant_id": "acme", "plan": "pro"}
    assert customer.address.city == "Berlin"
    assert customer.preferred_locales == ["de", "en"]
    assert fake.customers[customer.id]["email"] == "ops@acme.test"

    fetched = client.v1.customers.retrieve(customer.id)
    assert fetched.id == customer.id and fetched.name == "Acme"

    updated = client.v1.customers.update(customer.id, params={"name": "Acme GmbH", "metadata": {"plan": ""}})
    assert updated.name == "Acme GmbH"
    assert updated.metadata.to_dict() == {"tenant_id": "acme"}  # an empty value unsets a key
    event = fake.events[-1]
    assert event["type"] == "customer.updated"
    assert event["data"]["previous_attributes"]["name"] == "Acme"

    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    assert customer.id not in fake.customers
    assert client.v1.customers.retrieve(customer.id).deleted is True
    assert [e["type"] for e in fake.events] == ["customer.created", "customer.updated", "customer.deleted"]


def test_unknown_customer_is_resource_missing(client: StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_nope")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert "No such customer: 'cus_nope'" in str(info.value.user_message)


def test_list_paginates_newest_first(fake: FakeStripe, client: StripeClient) -> None:
    ids = []
    for i in range(7):
        ids.append(client.v1.customers.create(params={"email": f"c{i}@x.test"}).id)
        fake.advance(1)
    page = client.v1.customers.list(params={"limit": 3})
    assert [c.id for c in page.data] == ids[::-1][:3]
    assert page.has_more is True and page.url == "/v1/customers"
    second = client.v1.customers.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [c.id for c in second.data] == ids[::-1][3:6]
    back = client.v1.customers.list(params={"limit": 2, "ending_before": second.data[0].id})
    assert [c.id for c in back.data] == ids[::-1][1:3]
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]
    only = client.v1.customers.list(params={"email": "c4@x.test"})
    assert [c.id for c in only.data] == [ids[4]]
    recent = client.v1.customers.list(params={"created": {"gte": fake.now() - 2}})
    assert [c.id for c in recent.data] == ids[::-1][:2]


def test_search_by_metadata_and_email(fake: FakeStripe, client: StripeClient) -> None:
    acme = client.v1.customers.create(params={"email": "a@acme.test", "metadata": {"tenant_id": "acme"}})
    client.v1.customers.create(params={"email": "b@beta.test", "metadata": {"tenant_id": "beta"}})
    other_acme = client.v1.customers.create(params={"email": "other@acme.test", "metadata": {"tenant_id": "acme"}})

    result = client.v1.customers.search(params={"query": "metadata['tenant_id']:'acme'"})
    assert result.object == "search_result"
    assert {c.id for c in result.data} == {acme.id, other_acme.id}

    both = client.v1.customers.search(params={"query": "metadata['tenant_id']:'acme' AND email:'a@acme.test'"})
    assert [c.id for c in both.data] == [acme.id]

    paged = client.v1.customers.search(params={"query": "email~'acme'", "limit": 1})
    assert paged.has_more is True and paged.next_page
    assert {c.id for c in paged.auto_paging_iter()} == {acme.id, other_acme.id}

    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.search(params={"query": "bogus:'x'"})
    assert info.value.param == "query"


def test_search_lag_hides_fresh_objects() -> None:
    with FakeStripe(search_lag_seconds=60) as fake:
        client = fake.client()
        customer = client.v1.customers.create(params={"metadata": {"tenant_id": "acme"}})
        query = {"query": "metadata['tenant_id']:'acme'"}
        assert client.v1.customers.search(params=query).data == []
        fake.advance(60)
        assert [c.id for c in client.v1.customers.search(params=query).data] == [customer.id]


def test_authentication(fake: FakeStripe) -> None:
    with pytest.raises(stripe.AuthenticationError) as info:
        StripeClient("sk_live_123", base_addresses={"api": fake.url}).v1.customers.list()
    assert info.value.http_status == 401
    restricted = StripeClient("rk_test_123", base_addresses={"api": fake.url})
    assert restricted.v1.customers.list().data == []
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(f"{fake.url}/v1/customers", timeout=5)
    assert raw.value.code == 401
    assert b"You did not provide an API key" in raw.value.read()
