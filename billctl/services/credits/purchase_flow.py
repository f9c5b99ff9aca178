"""``credits purchase``: a top-up bought through Stripe (issue 13).

1. The purchase is recorded, pending (``create_purchase``: checked like a grant), in one unit of work.
2. Its one-off Stripe invoice is issued and pushed with the same safety as an invoice push
   (DESIGN.md invariants 9 and 10): deterministic idempotency keys
   (``billctl-credit-purchase-<id>-invoice|item|finalize``), the Stripe id stored the moment Stripe
   returns it, and, before creating anything an earlier interrupted run may have created, a look-up
   by ``metadata[billctl_credit_purchase]`` (Stripe forgets idempotency keys after a day). The
   invoice is untaxed (credits are taxed when the usage they pay for is billed) and has one item,
   not discountable; it inherits no customer discount; it is finalized only once its draft matches.
3. The grant is made when Stripe reports the invoice paid (``purchase_events``): at the push itself
   when Stripe collects at once, else through ``stripe sync-status`` or the webhook receiver.

A purchase whose push stopped (a crash, Stripe down) stays pending; ``billctl stripe push`` completes
it (``push_pending_purchases``): pushed twice, it is still one Stripe invoice. Without a Stripe key the
command refuses before writing anything (exit 4): credits paid outside Stripe are recorded with
``billctl credits grant --kind purchased``. A dry run writes nothing anywhere: it records the purchase
in a transaction that is rolled back and rehearses the push with a gateway that sends no write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billctl.core import bounds
from billctl.core import credits as core
from billctl.core.money import MoneyError, from_minor, parse_decimal
from billctl.db.models import CreditPurchase, Tenant
from billctl.db.repositories import credits as credit_records
from billctl.db.repositories import stripe as records
from billctl.errors import BadInput, NoStripeKey, StripeFailure, redact
from billctl.services.context import App, audit
from billctl.services.credits.common import day_start, refusals, tenant
from billctl.services.credits.purchase_events import apply_purchase_state
from billctl.services.credits.purchases import create_purchase
from billctl.services.stripe_sync.customers import ensure_customer, selected_tenants
from billctl.services.stripe_sync.gateway import (
    StripeStore,
    find_stripe_invoice,
    gateway,
    local_minor,
    reading,
)
from billctl.services.stripe_sync.outcomes import Outcome
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.idempotency import purchase_key
from billctl.stripe.mapping import purchases as pm
from billctl.stripe.status import StripeStatus

KIND = "credit_purchase"  # the outcomes' kind


@dataclass(frozen=True)
class PurchaseRequest:
    amount: str
    reason: str
    expires: str | None = None  # YYYY-MM-DD: the grant expires as that day starts (tenant's time zone)
    priority: int = core.PRIORITY_DEFAULT


@dataclass
class PurchaseResult:
    tenant: str
    dry_run: bool
    purchase_id: int
    currency: str
    amount: Decimal
    reason: str
    priority: int
    expires_at: datetime | None
    status: str  # the purchase's: pending | paid | void | uncollectible
    outcome: Outcome  # the Stripe push
    grant_id: int | None = None


def purchase_in(purchase: CreditPurchase, tenant: Tenant) -> pm.PurchaseIn:
    assert purchase.id is not None
    return pm.PurchaseIn(
        id=purchase.id,
        tenant_key=tenant.key,
        tenant_name=tenant.name,
        currency=purchase.currency,
        amount_minor=purchase.amount_minor,
        reason=purchase.reason,
        expires_at=purchase.expires_at,
    )


def purchase_credits(app: App, tenant_key: str, request: PurchaseRequest, *, dry_run: bool = False) -> PurchaseResult:
    """Record a pending purchase, issue its one-off Stripe invoice and push it. Bad input names its
    field and writes nothing; no Stripe key: ``NoStripeKey`` (exit 4), nothing written. A failed push
    leaves the purchase pending (the outcome says why; ``stripe push`` completes it)."""
    problem = bounds.text_problem(request.reason, "reason", bounds.REASON, required=True)
    if problem:
        raise BadInput(problem, field="reason", hint="say why the credits are bought; the audit log keeps it")
    with refusals():
        amount = parse_decimal(request.amount, field="amount")
    try:
        gw = gateway(app, dry_run=dry_run)
    except NoStripeKey as exc:
        raise NoStripeKey(
            f"{exc.message}: a credits purchase is paid through a Stripe invoice",
            hint=f"{exc.hint}; credits paid outside Stripe are recorded with `billctl credits grant --kind purchased`",
            field="stripe.api_key",
        ) from None
    now = app.now()
    with app.uow(dry_run=dry_run) as uow:
        row = tenant(uow.session, tenant_key)
        expires_at = day_start(request.expires, row.timezone, "expires") if request.expires else None
        purchase = create_purchase(
            uow,
            row,
            amount=amount,
            reason=request.reason,
            actor=app.actor,
            now=now,
            priority=request.priority,
            expires_at=expires_at,
        )
        audit(
            uow.session,
            app,
            "credits.purchase",
            "tenant",
            row.key,
            reason=request.reason,
            purchase=purchase.id,
            amount=str(from_minor(purchase.amount_minor, row.currency)),
            currency=row.currency,
            priority=request.priority,
            expires_at=expires_at.isoformat() if expires_at else None,
        )
    assert purchase.id is not None
    store = StripeStore(app, dry_run)
    outcome = push_or_fail(app, gw, purchase, row, store)
    grant_id = None
    status = "pending"
    if not dry_run:
        with reading(app) as session:
            stored, _ = records.purchase_and_tenant(session, purchase.id)
            status = stored.status
            grant = credit_records.grant_of_purchase(session, purchase.id)
            grant_id = grant.id if grant is not None else None
    return PurchaseResult(
        tenant=row.key,
        dry_run=dry_run,
        purchase_id=purchase.id,
        currency=purchase.currency,
        amount=from_minor(purchase.amount_minor, purchase.currency),
        reason=purchase.reason,
        priority=purchase.priority,
        expires_at=purchase.expires_at,
        status=status,
        outcome=outcome,
        grant_id=grant_id,
    )


def push_purchase(app: App, gw: Gateway, purchase: CreditPurchase, tenant: Tenant, store: StripeStore) -> Outcome:
    """Bring one purchase's invoice into Stripe, resuming wherever an earlier run stopped; record the
    Stripe state (paid at once: the grant is made here, once). Raises StripeFailure."""
    assert purchase.id is not None
    p = purchase_in(purchase, tenant)
    out = Outcome(KIND, p.ref, tenant.key, "pushed", total_minor=p.amount_minor, currency=p.currency)
    customer_id = tenant.stripe_customer_id or ensure_customer(app, gw, tenant, store).stripe_id
    if not customer_id:
        raise StripeFailure(f"no Stripe customer for tenant {tenant.key}")
    remote = _find_remote(gw, purchase, customer_id, out)
    resumed = purchase.stripe_push_started_at is not None or purchase.stripe_invoice_id is not None
    fresh = False
    if remote is None:
        if purchase.stripe_push_started_at is None:
            _store(store, purchase.id, stripe_push_started_at=app.now())  # from now on, look up before creating
        params = pm.purchase_invoice_params(p, customer_id, gw.settings.collection_method, gw.settings.days_until_due)
        remote = gw.create_invoice(params, purchase_key(p.id, "invoice", params))
        fresh = True
    if remote["id"] != purchase.stripe_invoice_id:
        _store(store, p.id, stripe_invoice_id=remote["id"], stripe_status=remote.get("status") or StripeStatus.DRAFT)
    out.stripe_id = remote["id"]
    if remote.get("status") == StripeStatus.DRAFT:
        existing = [] if fresh else [i for i in gw.list_invoice_items(remote["id"]) if pm.purchase_of(i) == p.id]
        if not existing:
            try:
                params = pm.purchase_item_params(p, customer_id, remote["id"])
            except MoneyError as exc:
                raise StripeFailure(f"{exc}; not sent") from None
            gw.create_invoice_item(params, purchase_key(p.id, "item", params))
        differences = pm.purchase_draft_differences(
            p, gw.retrieve_invoice(remote["id"]), gw.list_invoice_items(remote["id"])
        )
        if differences:
            raise StripeFailure(
                f"Stripe draft {remote['id']} differs from credit purchase {p.id}: {'; '.join(differences)}. "
                "Not finalized: correct or delete the draft in Stripe, then re-run `billctl stripe push`"
            )
        remote = gw.finalize_invoice(remote["id"], m.finalize_params(), purchase_key(p.id, "finalize"), remote)
        out.action = "completed" if resumed else "pushed"
    else:
        out.action = "already in stripe"
    state = m.payment_state(remote)
    out.status = state.status
    out.stripe_number = remote.get("number")
    out.hosted_url = remote.get("hosted_invoice_url")
    if not gw.dry_run:
        out.amount_due_minor = local_minor(remote.get("amount_due"), p.currency)
    with store.tx() as s:
        if s is not None:
            row, ten = records.purchase_and_tenant(s, p.id)
            result = apply_purchase_state(s, app, row, ten.key, remote, state.status, source="push")
            out.note += result.note if result.applied else ""
            audit(
                s,
                app,
                "stripe.credit_purchase.push",
                "tenant",
                ten.key,
                purchase=p.id,
                stripe_invoice=remote["id"],
                status=state.status,
                outcome=out.action,
            )
    return out


def _store(store: StripeStore, purchase_id: int, **values: Any) -> None:
    with store.tx() as s:
        if s is not None:
            records.update_purchase(s, purchase_id, **values)


def _find_remote(gw: Gateway, purchase: CreditPurchase, customer_id: str, out: Outcome) -> dict[str, Any] | None:
    """The Stripe invoice an earlier run made for the purchase: by stored id, else by metadata."""
    purchase_id = purchase.id
    assert purchase_id is not None
    return find_stripe_invoice(
        gw,
        customer_id,
        purchase.stripe_invoice_id,
        purchase.stripe_push_started_at is not None,
        lambda listed: pm.match_purchase_invoices(listed, purchase_id),
        "this purchase",
        out,
    )


def push_or_fail(app: App, gw: Gateway, purchase: CreditPurchase, tenant: Tenant, store: StripeStore) -> Outcome:
    """``push_purchase``, with a Stripe request that failed for good as a failed outcome (the purchase
    stays pending; `billctl stripe push` completes it later)."""
    try:
        return push_purchase(app, gw, purchase, tenant, store)
    except StripeFailure as exc:
        return Outcome(
            KIND,
            f"credit-purchase-{purchase.id}",
            tenant.key,
            "failed",
            purchase.stripe_invoice_id,
            total_minor=purchase.amount_minor,
            currency=purchase.currency,
            note=redact(str(exc)),
        )


def push_pending_purchases(
    app: App,
    gw: Gateway,
    store: StripeStore,
    tenant_key: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Complete every purchase whose push stopped before its invoice was final in Stripe (``stripe
    push`` calls it). A failure on one is reported and the others go on."""
    tenant_id = selected_tenants(app, tenant_key)[0].id if tenant_key else None
    with reading(app) as session:
        todo = records.pending_purchase_ids(session, unfinished={StripeStatus.DRAFT}, tenant_id=tenant_id)
    outcomes = []
    for purchase_id, _tid in todo:
        with reading(app) as session:
            purchase, ten = records.purchase_and_tenant(session, purchase_id)
        outcome = push_or_fail(app, gw, purchase, ten, store)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes
