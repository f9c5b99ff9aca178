"""Stripe orchestration: customers, invoice push, payment outcomes, reconciliation.

Every Stripe write is idempotent (DESIGN.md invariant 9): its idempotency key comes from local ids,
the step and a digest of its parameters (``billctl.stripe.mapping``), each Stripe id is committed
locally the moment Stripe returns it (one small transaction per step), and before creating anything
that an earlier, interrupted run may already have created, the existing object is looked up by
metadata (Stripe keeps idempotency keys for about 24 hours; metadata lasts). So a crash between any
two calls, followed by a re-run minutes or days later, leaves one customer per tenant and one Stripe
invoice per local invoice with exactly its lines.

Stripe charges what billctl finalized (invariant 10): drafts are created with no inherited discount,
no automatic tax and non-discountable items, and a draft is finalized only once it matches the local
invoice item by item and in its subtotal, tax and total. A draft that differs stays a draft; the
invoice is reported failed with the differences (stored in ``invoice.stripe_error``) and the run
exits 6. A customer balance Stripe applies at finalization is reported, not mistaken for one.

Dry run (invariant 6): the same code path; the gateway sends no write to Stripe (reads still go)
and nothing is written to the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from billctl.core.money import MoneyError, minor_from_stripe, to_stripe_amount
from billctl.core.periods import Period
from billctl.db.models import Invoice, InvoiceLine, StripeCursor, StripeEvent, Tenant
from billctl.errors import StripeFailure, redact
from billctl.services.context import App, audit
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.keys import stripe_settings

EVENT_TYPES = [
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.updated",
]
CURSOR = "events"


def gateway(app: App, *, dry_run: bool = False, **kwargs: Any) -> Gateway:
    """A gateway from the configuration (raises ConfigError, exit 4, on a missing or unsafe key)."""
    return Gateway(stripe_settings(app.config), dry_run=dry_run, **kwargs)


@dataclass
class Outcome:
    kind: str  # customer | invoice
    ref: str  # tenant key or invoice number
    tenant: str
    action: str  # created | found | updated | unchanged | pushed | completed | already in stripe | voided | failed
    stripe_id: str | None = None
    status: str | None = None  # invoices: payment status after the push
    stripe_number: str | None = None
    hosted_url: str | None = None
    total_minor: int | None = None
    currency: str | None = None
    note: str = ""
    amount_due_minor: int | None = None  # invoices: what Stripe collects (total plus customer balance)

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass
class RunReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    writes_skipped: int = 0
    seconds: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.action] = counts.get(o.action, 0) + 1
        return counts


class _Store:
    """Local writes of the Stripe flow: each its own committed transaction; none in a dry run."""

    def __init__(self, app: App, dry_run: bool) -> None:
        self.app = app
        self.dry_run = dry_run

    @contextmanager
    def tx(self) -> Iterator[Session | None]:
        if self.dry_run:
            yield None
            return
        with self.app.session() as session:
            yield session

    def invoice(self, invoice_id: int, **values: Any) -> None:
        with self.tx() as s:
            if s is not None:
                s.execute(sa.update(Invoice).where(Invoice.id == invoice_id).values(**values))

    def line(self, line_id: int, item_id: str) -> None:
        with self.tx() as s:
            if s is not None:
                s.execute(sa.update(InvoiceLine).where(InvoiceLine.id == line_id).values(stripe_item_id=item_id))


# ---------------------------------------------------------------- customers


def _tenants(app: App, tenant_key: str | None) -> list[Tenant]:
    from billctl.services.invoices import billed_tenants

    with Session(app.engine) as session:
        return billed_tenants(session, tenant_key)


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


def _retrieve(fetch: Callable[[str], dict[str, Any]], object_id: str) -> tuple[dict[str, Any] | None, bool]:
    """(the Stripe object, None when Stripe no longer has it; whether Stripe says it was deleted)."""
    try:
        remote = fetch(object_id)
    except StripeFailure as exc:
        if exc.status != 404:
            raise
        return None, False
    return (None, True) if remote.get("deleted") else (remote, False)


def ensure_customer(
    app: App, gw: Gateway, tenant: Tenant, store: _Store, finder: CustomerFinder | None = None
) -> Outcome:
    """The tenant's Stripe customer: the stored one, else one found by metadata, else a new one;
    updated when name, email or metadata differ. The id is stored as soon as it is known."""
    wanted = m.customer_params(tenant.key, tenant.name, tenant.email)
    remote: dict[str, Any] | None = None
    action, note, replacing = "unchanged", "", None
    if tenant.stripe_customer_id:
        remote, deleted = _retrieve(gw.retrieve_customer, tenant.stripe_customer_id)
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
            if s is not None:
                s.execute(sa.update(Tenant).where(Tenant.id == tenant.id).values(stripe_customer_id=remote["id"]))
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
    report = RunReport(dry_run=gw.dry_run)
    store = _Store(app, gw.dry_run)
    finder = CustomerFinder(gw)
    tenants = _tenants(app, tenant_key)
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
    _count(report, gw)
    return report


def _count(report: RunReport, gw: Gateway) -> None:
    report.requests, report.retries, report.writes_skipped = gw.requests, gw.retries, gw.writes_skipped


# ---------------------------------------------------------------- invoices


def _invoice_in(invoice: Invoice, tenant: Tenant, lines: list[InvoiceLine]) -> m.InvoiceIn:
    return m.InvoiceIn(
        number=invoice.number,
        tenant_key=tenant.key,
        tenant_name=tenant.name,
        period=invoice.period,
        currency=invoice.currency,
        total_minor=invoice.total_minor,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        timezone=tenant.timezone,
        lines=tuple(
            m.LineIn(
                position=x.position,
                kind=x.kind,
                description=x.description,
                quantity=x.quantity,
                unit_price=x.unit_price,
                amount_minor=x.amount_minor,
                for_period=x.for_period,
                **_service_period(x),
            )
            for x in lines
        ),
    )


SEGMENT_KINDS = ("base", "usage", "minimum")  # lines priced within one plan segment


def _service_period(line: InvoiceLine) -> dict[str, datetime]:
    """A segment line's own service period (rating records the segment's start and end)."""
    detail = line.detail or {}
    if line.kind in SEGMENT_KINDS and detail.get("start") and detail.get("end"):
        return {
            "service_start": datetime.fromisoformat(detail["start"]),
            "service_end": datetime.fromisoformat(detail["end"]),
        }
    return {}


def _state_values(remote: dict[str, Any]) -> dict[str, Any]:
    state = m.payment_state(remote)
    transitions = remote.get("status_transitions") or {}
    at = max([v for v in transitions.values() if isinstance(v, int)] or [0]) or None
    return {
        "stripe_status": state.status,
        "stripe_attempt_count": state.attempt_count,
        "stripe_next_payment_attempt": state.next_payment_attempt,
        "stripe_number": remote.get("number"),
        "stripe_hosted_url": remote.get("hosted_invoice_url"),
        "stripe_event_at": at,
        "stripe_amount_paid": local_minor(remote.get("amount_paid"), remote.get("currency")),
        "stripe_amount_remaining": local_minor(remote.get("amount_remaining"), remote.get("currency")),
    }


def push_invoice(app: App, gw: Gateway, invoice_id: int, store: _Store, customer_id: str | None = None) -> Outcome:
    """Bring one local invoice into Stripe, resuming wherever an earlier run stopped."""
    with Session(app.engine) as session:
        invoice = session.get(Invoice, invoice_id)
        tenant = session.get(Tenant, invoice.tenant_id)
        lines = list(
            session.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position))
        )
    inv = _invoice_in(invoice, tenant, lines)
    out = Outcome("invoice", inv.number, tenant.key, "pushed", total_minor=inv.total_minor, currency=inv.currency)
    if invoice.status == "void":
        return _void_in_stripe(app, gw, invoice, tenant.stripe_customer_id or customer_id, store, out)
    customer_id = customer_id or tenant.stripe_customer_id
    if not customer_id:
        customer_id = ensure_customer(app, gw, tenant, store).stripe_id
    assert customer_id is not None

    remote = _find_remote(gw, invoice, customer_id, out)
    fresh = False
    if remote is None:
        if invoice.stripe_push_started_at is None:
            store.invoice(invoice_id, stripe_push_started_at=app.now())  # from now on, look up before creating
        params = m.invoice_params(inv, customer_id, gw.settings.collection_method, gw.settings.days_until_due)
        remote = gw.create_invoice(params, m.invoice_key(inv.number, "create", params))
        fresh = True
    if remote["id"] != invoice.stripe_invoice_id:
        store.invoice(invoice_id, stripe_invoice_id=remote["id"], stripe_status=remote.get("status") or "draft")
    out.stripe_id = remote["id"]
    resumed = invoice.stripe_push_started_at is not None or invoice.stripe_invoice_id is not None

    if remote.get("status") == "draft":
        try:
            _complete_draft(gw, inv, lines, remote["id"], customer_id, store, fresh)
        except MoneyError as exc:
            raise StripeFailure(f"{exc}; not sent (void the invoice and finalize it again)") from None
        remote = gw.finalize_invoice(remote["id"], m.finalize_params(), m.invoice_key(inv.number, "finalize"), remote)
        out.action = "completed" if resumed else "pushed"
    else:
        out.action = "already in stripe"
    values = {**_state_values(remote), "stripe_error": None}
    with store.tx() as s:
        if s is not None:
            s.execute(sa.update(Invoice).where(Invoice.id == invoice_id).values(**values))
            audit(
                s,
                app,
                "stripe.invoice.push",
                "invoice",
                inv.number,
                stripe_invoice=remote["id"],
                stripe_number=values["stripe_number"],
                status=values["stripe_status"],
                outcome=out.action,
            )
    out.status = values["stripe_status"]
    out.stripe_number = values["stripe_number"]
    out.hosted_url = values["stripe_hosted_url"]
    _note_collection(inv, remote, out, gw.dry_run)
    return out


def _find_remote(gw: Gateway, invoice: Invoice, customer_id: str, out: Outcome) -> dict[str, Any] | None:
    """The Stripe invoice an earlier run made for ``invoice``: by stored id, else (an earlier run may
    have created it and died before storing the id, or more than a day ago, when Stripe no longer
    remembers the idempotency key) by metadata."""
    remote = _retrieve(gw.retrieve_invoice, invoice.stripe_invoice_id)[0] if invoice.stripe_invoice_id else None
    if remote is None and (invoice.stripe_push_started_at is not None or invoice.stripe_invoice_id is not None):
        matches = m.match_invoices(gw.list_invoices(customer_id), invoice.number)
        live = [x for x in matches if x.get("status") != "void"] or matches
        if live:
            remote = dict(live[0])
            if len(live) > 1:
                out.note += f"{len(live)} Stripe invoices carry this number ({', '.join(x['id'] for x in live)}); "
    return remote


def _complete_draft(
    gw: Gateway,
    inv: m.InvoiceIn,
    rows: list[InvoiceLine],
    draft_id: str,
    customer_id: str,
    store: _Store,
    fresh: bool,
) -> None:
    """Add the items the draft lacks, then compare the whole draft with the local invoice: raises
    StripeFailure, naming every difference, unless it may be finalized as it is."""
    existing = {} if fresh else m.items_by_position(gw.list_invoice_items(draft_id), inv.number)
    for line, row in zip(inv.lines, rows, strict=True):
        if existing.get(line.position):
            item = existing[line.position][0]
        else:
            params = m.item_params(inv, line, customer_id, draft_id)
            item = gw.create_invoice_item(params, m.item_key(inv.number, line.position, params))
        if item["id"] != row.stripe_item_id:
            store.line(row.id, item["id"])
    differences = m.draft_differences(inv, gw.retrieve_invoice(draft_id), gw.list_invoice_items(draft_id))
    if differences:
        raise StripeFailure(
            f"Stripe draft {draft_id} differs from the invoice: {'; '.join(differences)}. Not finalized: "
            "correct or delete the draft in Stripe, then re-run `billctl stripe push`"
        )


def _note_collection(inv: m.InvoiceIn, remote: dict[str, Any], out: Outcome, dry_run: bool) -> None:
    """What Stripe collects, when it is not simply the invoice's total (never a difference)."""
    balance = 0 if dry_run else m.balance_applied(remote)
    if not dry_run:
        out.amount_due_minor = local_minor(remote.get("amount_due"), inv.currency)
    if balance:
        due = m.show_amount(remote.get("amount_due"), inv.currency)
        how = "a credit" if balance < 0 else "an amount owed"
        out.note += (
            f"customer balance applied by Stripe: {how} of {m.show_amount(abs(balance), inv.currency)}, "
            f"Stripe collects {due}; "
        )
    if inv.total_minor == 0:
        out.note += "zero amount: Stripe marks it paid; "
    elif m.below_minimum(inv.currency, to_stripe_amount(inv.total_minor, inv.currency, check=False)):
        out.note += "below Stripe's minimum charge: Stripe carries it to the customer's balance; "
    out.note = out.note.strip().rstrip(";")


def local_minor(stripe_amount: int | None, currency: str | None) -> int | None:
    """An amount read from Stripe in billctl's minor units (what ``*_minor`` columns and local
    amounts hold: UGX ``500`` is 5); None when Stripe gave none (or one billctl cannot hold)."""
    if stripe_amount is None or not currency:
        return None
    try:
        return minor_from_stripe(stripe_amount, currency)
    except MoneyError:
        return None


def _void_in_stripe(
    app: App, gw: Gateway, invoice: Invoice, customer_id: str | None, store: _Store, out: Outcome
) -> Outcome:
    """Void in Stripe what was voided here: an open or uncollectible invoice is voided, a draft
    (never finalized, so never charged) is deleted, and so is any draft an interrupted push left
    behind without its id being stored."""
    remote = _find_remote(gw, invoice, customer_id, out) if customer_id else None
    if remote is None:
        out.action, out.status = "already in stripe", invoice.stripe_status
        if invoice.stripe_status in (None, "draft"):  # nothing left in Stripe: the draft is gone
            _record_void(app, invoice, store, {"stripe_status": "deleted"}, "stripe.invoice.delete", None)
            out.action, out.status = "deleted", "deleted"
        return out
    out.stripe_id = remote["id"]
    if remote.get("status") == "draft":
        try:
            gw.delete_invoice(remote["id"])
        except StripeFailure as exc:
            if exc.status != 404:  # 404: deleted meanwhile (an earlier, interrupted run)
                raise
        _record_void(app, invoice, store, {"stripe_status": "deleted"}, "stripe.invoice.delete", remote["id"])
        out.action, out.status = "deleted", "deleted"
        return out
    if remote.get("status") in ("open", "uncollectible"):
        remote = gw.void_invoice(remote["id"], m.invoice_key(invoice.number, "void"), remote)
        out.action = "voided"
    else:
        out.action = "already in stripe"
    values = _state_values(remote)
    _record_void(app, invoice, store, values, "stripe.invoice.void", remote["id"])
    out.status = values["stripe_status"]
    return out


def _record_void(
    app: App, invoice: Invoice, store: _Store, values: dict[str, Any], action: str, stripe_id: str | None
) -> None:
    with store.tx() as s:
        if s is not None:
            s.execute(sa.update(Invoice).where(Invoice.id == invoice.id).values(**values, stripe_error=None))
            audit(s, app, action, "invoice", invoice.number, stripe_invoice=stripe_id)


def pending_invoices(app: App, period: Period | None = None, tenant_key: str | None = None) -> list[tuple[int, int]]:
    """(invoice id, tenant id) of invoices that push has work for, oldest first: finalized ones not
    yet final in Stripe, void ones whose Stripe invoice is still open, and void ones that may have
    left a draft in Stripe (to delete)."""
    with Session(app.engine) as session:
        query = select(Invoice.id, Invoice.tenant_id).where(
            sa.or_(
                sa.and_(
                    Invoice.status == "finalized",
                    sa.or_(Invoice.stripe_status.is_(None), Invoice.stripe_status == "draft"),
                ),
                sa.and_(
                    Invoice.status == "void",
                    Invoice.stripe_invoice_id.is_not(None),
                    Invoice.stripe_status.in_(["open", "payment_failed", "uncollectible", "draft"]),
                ),
                sa.and_(
                    Invoice.status == "void",
                    Invoice.stripe_push_started_at.is_not(None),
                    Invoice.stripe_status.is_(None),
                ),
            )
        )
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if tenant_key:
            query = query.where(Invoice.tenant_id == _tenants(app, tenant_key)[0].id)
        return [(row[0], row[1]) for row in session.exec(query.order_by(Invoice.id))]


def push(
    app: App,
    gw: Gateway,
    period: Period | None = None,
    tenant_key: str | None = None,
    *,
    workers: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunReport:
    """Push every pending invoice. A failure on one invoice is recorded and the others go on;
    a bad key or an unreachable Stripe stops the run (nothing else could succeed)."""
    import time

    started = time.perf_counter()
    report = RunReport(dry_run=gw.dry_run)
    store = _Store(app, gw.dry_run)
    todo = pending_invoices(app, period, tenant_key)
    # customers first, one per tenant, so parallel invoice pushes never race to create one
    tenant_ids = sorted({t for _, t in todo})
    customers: dict[int, str | None] = {}
    with Session(app.engine) as session:
        tenants = {t.id: t for t in session.exec(select(Tenant).where(Tenant.id.in_(tenant_ids)))} if tenant_ids else {}
    failed_tenants: dict[int, str] = {}
    if on_total:  # customers to create, then invoices
        on_total(sum(1 for tid in tenant_ids if not tenants[tid].stripe_customer_id) + len(todo))

    finder = CustomerFinder(gw)

    def customer(tid: int) -> Outcome | None:
        tenant = tenants[tid]
        if tenant.stripe_customer_id:
            return None
        try:
            return ensure_customer(app, gw, tenant, store, finder)
        except StripeFailure as exc:
            failed_tenants[tid] = str(exc)
            return None

    def pool_map(fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        if workers <= 1:
            yield from map(fn, items)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe-push") as pool:
            yield from pool.map(fn, items)

    for tid, outcome in zip(tenant_ids, pool_map(customer, tenant_ids), strict=True):
        if outcome is not None:
            report.outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
        customers[tid] = tenants[tid].stripe_customer_id

    def one(item: tuple[int, int]) -> Outcome:
        invoice_id, tid = item
        if tid in failed_tenants:
            return _failed(app, invoice_id, f"customer: {failed_tenants[tid]}", store)
        try:
            return push_invoice(app, gw, invoice_id, store, customers.get(tid))
        except StripeFailure as exc:
            return _failed(app, invoice_id, str(exc), store)

    for outcome in pool_map(one, todo):
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    # then credit notes whose invoice is final in Stripe (some just became so)
    from billctl.services import credit_notes

    notes = credit_notes.pending(app, period, tenant_key)
    report.outcomes.extend(credit_notes.push_pending(app, gw, store, notes, on_outcome))
    _count(report, gw)
    report.seconds = time.perf_counter() - started
    return report


def _failed(app: App, invoice_id: int, reason: str, store: _Store) -> Outcome:
    """The invoice failed to push: the reason is kept (``invoice.stripe_error``) until a push succeeds."""
    with Session(app.engine) as session:
        invoice = session.get(Invoice, invoice_id)
        tenant = session.get(Tenant, invoice.tenant_id)
    store.invoice(invoice_id, stripe_error=redact(reason)[:2000])
    return failed_outcome("invoice", invoice, tenant.key, invoice.stripe_invoice_id, reason)


def failed_outcome(kind: str, doc: Any, tenant_key: str, stripe_id: str | None, reason: str) -> Outcome:
    """The outcome of a document (an invoice, a credit note) that could not go to Stripe."""
    return Outcome(
        kind,
        doc.number,
        tenant_key,
        "failed",
        stripe_id,
        total_minor=doc.total_minor,
        currency=doc.currency,
        note=redact(reason),
    )


# ---------------------------------------------------------------- payment outcomes


@dataclass
class Change:
    event_id: str
    event_type: str
    number: str | None  # local invoice, None when the Stripe invoice is not ours
    tenant: str | None
    before: str | None
    after: str | None
    attempt_count: int = 0
    next_payment_attempt: datetime | None = None
    applied: bool = True  # False: older than what was already applied, or a duplicate
    note: str = ""


def apply_event(session: Session, app: App, event: dict[str, Any], source: str) -> Change:
    """Apply one Stripe event to the local invoice it concerns, once (deduplicated by event id).
    The caller commits (with the cursor, for sync-status) or rolls back (dry run)."""
    obj = (event.get("data") or {}).get("object") or {}
    change = Change(event["id"], event.get("type", ""), None, None, None, None)
    if session.get(StripeEvent, event["id"]) is not None:
        change.applied, change.note = False, "duplicate event"
        return change
    invoice = None
    if obj.get("object") == "invoice":
        invoice = session.exec(select(Invoice).where(Invoice.stripe_invoice_id == obj.get("id"))).first()
        number = (obj.get("metadata") or {}).get(m.META_INVOICE)
        if invoice is None and number:
            candidate = session.exec(select(Invoice).where(Invoice.number == number)).first()
            if candidate is not None and candidate.stripe_invoice_id in (None, obj.get("id")):
                invoice = candidate
    session.add(
        StripeEvent(
            id=event["id"],
            type=change.event_type[:64],
            created=int(event.get("created") or 0),
            source=source,
            invoice_number=invoice.number if invoice else None,
        )
    )
    if invoice is None:
        change.applied, change.note = False, "not a billctl invoice"
        return change
    tenant = session.get(Tenant, invoice.tenant_id)
    state = m.payment_state(obj, change.event_type)
    change.number, change.tenant, change.before = invoice.number, tenant.key if tenant else None, invoice.stripe_status
    change.after, change.attempt_count, change.next_payment_attempt = (
        state.status,
        state.attempt_count,
        state.next_payment_attempt,
    )
    created = int(event.get("created") or 0)
    if not m.newer(invoice.stripe_event_at, invoice.stripe_status, created, state.status):
        change.applied, change.after, change.note = False, invoice.stripe_status, "older than the recorded state"
        return change
    invoice.stripe_invoice_id = invoice.stripe_invoice_id or obj.get("id")
    invoice.stripe_status = state.status
    invoice.stripe_attempt_count = state.attempt_count
    invoice.stripe_next_payment_attempt = state.next_payment_attempt
    invoice.stripe_number = obj.get("number") or invoice.stripe_number
    invoice.stripe_hosted_url = obj.get("hosted_invoice_url") or invoice.stripe_hosted_url
    invoice.stripe_event_at = created
    if "amount_paid" in obj:  # Stripe's units for the currency -> billctl's minor units
        invoice.stripe_amount_paid = local_minor(obj["amount_paid"], invoice.currency)
    if "amount_remaining" in obj:
        invoice.stripe_amount_remaining = local_minor(obj["amount_remaining"], invoice.currency)
    session.add(invoice)
    if change.before != change.after:
        audit(
            session,
            app,
            "stripe.invoice.status",
            "invoice",
            invoice.number,
            before=change.before,
            after=change.after,
            event=event["id"],
            event_type=change.event_type,
            source=source,
            attempt_count=state.attempt_count,
        )
    return change


@dataclass
class StatusReport:
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    attention: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    cursor: str | None = None


def _pages(gw: Gateway, cursor: StripeCursor | None) -> Iterator[list[dict[str, Any]]]:
    """Events after the cursor, oldest first, one page at a time."""
    base: dict[str, Any] = {"limit": 100, "types": EVENT_TYPES}
    if cursor is None:  # first run: every event Stripe still has (30 days), read newest first
        collected: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = gw.list_events({**base, **({"starting_after": after} if after else {})})
            collected.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                break
            after = page["data"][-1]["id"]
        yield list(reversed(collected))
        return
    before = cursor.event_id
    while True:
        try:
            page = gw.list_events({**base, "ending_before": before})
        except StripeFailure as exc:
            if exc.status not in (400, 404):
                raise
            # the cursor event is gone (Stripe keeps events 30 days): fall back to its time;
            # already applied events are skipped by id
            yield from _since(gw, base, cursor.created)
            return
        data = list(reversed(page["data"]))  # oldest first
        if data:
            yield data
            before = data[-1]["id"]
        if not page.get("has_more") or not data:
            return


def _since(gw: Gateway, base: dict[str, Any], created: int) -> Iterator[list[dict[str, Any]]]:
    collected: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = gw.list_events({**base, "created": {"gte": created}, **({"starting_after": after} if after else {})})
        collected.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            break
        after = page["data"][-1]["id"]
    yield list(reversed(collected))


def sync_status(app: App, gw: Gateway, on_change: Callable[[Change], None] | None = None) -> StatusReport:
    """Pull invoice events since the stored cursor and update local payment status. The cursor moves
    in the same transaction as the changes it covers, so a crash never skips or double-applies."""
    report = StatusReport(dry_run=gw.dry_run)
    with Session(app.engine, expire_on_commit=False) as session:
        cursor = session.get(StripeCursor, CURSOR)
        for page in _pages(gw, cursor):
            for event in page:
                change = apply_event(session, app, event, "sync")
                report.events += 1
                report.changes.append(change)
                if on_change:
                    on_change(change)
                cursor = session.get(StripeCursor, CURSOR)
                if cursor is None:
                    cursor = StripeCursor(name=CURSOR, event_id=event["id"], created=int(event.get("created") or 0))
                else:
                    cursor.event_id, cursor.created = event["id"], int(event.get("created") or 0)
                    cursor.updated_at = app.now()
                session.add(cursor)
                if not gw.dry_run:
                    session.commit()
                else:
                    session.flush()
        report.cursor = cursor.event_id if cursor else None
        report.attention = attention(session)
        if gw.dry_run:
            session.rollback()
    return report


def attention(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(
        select(Invoice, Tenant)
        .join(Tenant, Tenant.id == Invoice.tenant_id)
        .where(Invoice.stripe_status.in_(sorted(m.ATTENTION)), Invoice.status != "void")
        .order_by(Invoice.id)
    )
    return [
        {
            "number": inv.number,
            "tenant": ten.key,
            "status": inv.stripe_status,
            "attempt_count": inv.stripe_attempt_count or 0,
            "next_payment_attempt": inv.stripe_next_payment_attempt,
            "total_minor": inv.total_minor,
            "currency": inv.currency,
            "stripe_invoice": inv.stripe_invoice_id,
            "hosted_url": inv.stripe_hosted_url,
        }
        for inv, ten in rows
    ]


def attention_doc(item: dict[str, Any]) -> dict[str, Any]:
    """One ``attention()`` entry as JSON: money as minor units + currency + decimal, times ISO 8601."""
    from billctl.services.invoices import money

    when = item["next_payment_attempt"]
    return {
        **{k: v for k, v in item.items() if k not in ("total_minor", "currency", "next_payment_attempt")},
        "next_payment_attempt": when.isoformat() if when else None,
        "total": money(item["total_minor"], item["currency"]),
    }


# ---------------------------------------------------------------- reconcile


@dataclass
class ReconcileReport:
    drifts: list[m.Drift]
    checked: int
    stripe_invoices: int
    fixed: list[str] = field(default_factory=list)


def reconcile(
    app: App, gw: Gateway, period: Period | None = None, tenant_key: str | None = None, *, fix: bool = False
) -> ReconcileReport:
    """Compare local invoices and their credit notes with Stripe (missing, duplicated, amount or
    status mismatch). Reads only,
    unless ``fix``: then stored Stripe ids and payment status are refreshed from Stripe (locally only)."""
    with Session(app.engine) as session:
        query = select(Invoice, Tenant).join(Tenant, Tenant.id == Invoice.tenant_id).order_by(Invoice.id)
        if period is not None:
            query = query.where(Invoice.period == str(period))
        if tenant_key:
            query = query.where(Tenant.id == _tenants(app, tenant_key)[0].id)
        rows = list(session.exec(query))
        tenants = (
            [ten for ten in _tenants(app, tenant_key)]
            if tenant_key
            else list(session.exec(select(Tenant).where(Tenant.stripe_customer_id.is_not(None)).order_by(Tenant.id)))
        )
    local = [
        m.LocalInvoice(
            inv.number,
            ten.key,
            inv.currency,
            inv.total_minor,
            inv.status,
            inv.stripe_invoice_id,
            inv.stripe_status,
            inv.stripe_error,
        )
        for inv, ten in rows
    ]
    remote: list[dict[str, Any]] = []
    for tenant in tenants:
        if not tenant.stripe_customer_id:
            continue
        for inv in gw.list_invoices(tenant.stripe_customer_id):
            meta = inv.get("metadata") or {}
            if m.META_INVOICE not in meta:
                continue
            if period is not None and meta.get("period") != str(period):
                continue
            remote.append(inv)
    from billctl.services import credit_notes

    drifts = m.reconcile(local, remote) + credit_notes.reconcile(app, gw, rows, remote)
    report = ReconcileReport(drifts=drifts, checked=len(local), stripe_invoices=len(remote))
    if fix:
        by_id = {r["id"]: r for r in remote}
        by_number = {inv.number: inv for inv, _ in rows}
        fixable = {
            d.number for d in drifts if d.kind in ("id", "status") and len(d.stripe_ids) == 1 and d.number in by_number
        }
        for number in sorted(fixable):
            dup = any(d.number == number and d.kind == "duplicate" for d in drifts)
            if dup:
                continue
            stripe_id = next(d.stripe_ids[0] for d in drifts if d.number == number and d.stripe_ids)
            values = {"stripe_invoice_id": stripe_id, **_state_values(by_id[stripe_id])}
            with app.session() as s:
                s.execute(sa.update(Invoice).where(Invoice.id == by_number[number].id).values(**values))
                audit(
                    s,
                    app,
                    "stripe.reconcile.fix",
                    "invoice",
                    number,
                    stripe_invoice=stripe_id,
                    status=values["stripe_status"],
                )
            report.fixed.append(number)
        report.drifts = [d for d in drifts if d.number not in report.fixed or d.kind not in ("id", "status")]
    return report
