"""Each tenant's Stripe customer: the stored one, else one found by metadata, else a new one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from billctl.db.models import Tenant
from billctl.db.repositories import stripe as records
from billctl.errors import StripeFailure
from billctl.services.context import App, audit
from billctl.services.stripe_sync.gateway import StripeStore, reading, retrieve_live
from billctl.services.stripe_sync.outcomes import Outcome, RunReport
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway


def selected_tenants(app: App, tenant_key: str | None) -> list[Tenant]:
    """The tenant named ``tenant_key`` (NotFound if none), or every active tenant, in id order."""
    from billctl.services.invoices import billed_tenants as query

    with reading(app) as session:
        return query(session, tenant_key)


class CustomerFinder:
    """Finds a tenant's Stripe customers by metadata, once per run's worth of state: with Stripe's
    search, or, where search is unavailable (accounts in India, for one) or fails, from the customer
    list: first the customers with the tenant's e-mail, then every customer (listed once per run)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.search_failed: str | None = None
        self._everyone: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def find(self, tenant: Tenant) -> tuple[list[dict[str, Any]], str]:
        """(customers that may be the tenant's, a note on how they were found)."""
        if self.search_failed is None:
            try:
                return self.gw.search_customers(m.customer_search_query(tenant.key)), ""
            except StripeFailure as exc:
                if exc.status is None or exc.status >= 500 or exc.status == 429:
                    raise
                self.search_failed = str(exc)
        note = "customer search unavailable in Stripe, looked up in the customer list; "
        if tenant.email:
            by_email = list(self.gw.list_customers({"email": tenant.email}))
            if m.pick_customer(by_email, tenant.key)[0] is not None:
                return by_email, note
        with self._lock:
            if self._everyone is None:
                self._everyone = list(self.gw.list_customers({}))
            return self._everyone, note


def ensure_customer(
    app: App, gw: Gateway, tenant: Tenant, store: StripeStore, finder: CustomerFinder | None = None
) -> Outcome:
    """The tenant's Stripe customer: the stored one, else one found by metadata, else a new one;
    updated when name, email or metadata differ. The id is stored as soon as it is known."""
    wanted = m.customer_params(tenant.key, tenant.name, tenant.email)
    remote: dict[str, Any] | None = None
    action, note, replacing = "unchanged", "", None
    if tenant.stripe_customer_id:
        remote, deleted = retrieve_live(gw.retrieve_customer, tenant.stripe_customer_id)
        if deleted:
            note = f"stored customer {tenant.stripe_customer_id} was deleted in Stripe; "
            replacing = tenant.stripe_customer_id
    if remote is None:
        candidates, how = (finder or CustomerFinder(gw)).find(tenant)
        found, count = m.pick_customer(candidates, tenant.key)
        note += how
        if found is not None:
            remote, action = dict(found), "found"
            if count > 1:
                note += f"{count} Stripe customers carry this tenant's metadata; using the oldest, {found['id']}; "
    if remote is None:
        create = m.customer_create_params(tenant.key)
        remote = gw.create_customer(create, m.customer_create_key(tenant.key, create, replacing))
        action = "created"
    if remote["id"] != tenant.stripe_customer_id:
        with store.tx() as s:
            if s is not None and tenant.id is not None:
                records.link_customer(s, tenant.id, remote["id"])
                audit(s, store.app, "stripe.customer.link", "tenant", tenant.key, customer=remote["id"], how=action)
        tenant.stripe_customer_id = remote["id"]
    changes = m.customer_changes(remote, wanted)
    if changes:  # a new customer gets its name and e-mail here (its create sent only metadata)
        edited = tenant.updated_at.isoformat() if tenant.updated_at else None
        key = m.customer_update_key(tenant.key, remote["id"], m.customer_view(remote), wanted, edited)
        gw.update_customer(remote["id"], changes, key)
        if action != "created":
            action = "updated" if action == "unchanged" else f"{action}, updated"
            note += f"changed {', '.join(sorted(changes))}"
    return Outcome("customer", tenant.key, tenant.key, action, remote["id"], note=note.strip().rstrip(";"))


def sync_customers(
    app: App,
    gw: Gateway,
    tenant_key: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunReport:
    """Bring every active tenant's (or one tenant's) Stripe customer in line; a failure on one is
    recorded and the others go on."""
    report = RunReport(dry_run=gw.dry_run)
    store = StripeStore(app, gw.dry_run)
    finder = CustomerFinder(gw)
    tenants = selected_tenants(app, tenant_key)
    if on_total:
        on_total(len(tenants))
    for tenant in tenants:
        try:
            outcome = ensure_customer(app, gw, tenant, store, finder)
        except StripeFailure as exc:
            outcome = Outcome("customer", tenant.key, tenant.key, "failed", tenant.stripe_customer_id, note=str(exc))
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    report.count_requests(gw)
    return report
