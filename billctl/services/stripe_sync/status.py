"""Payment outcomes: Stripe's invoice events applied to the local invoices, by ``stripe sync-status``
(pulling events since a stored cursor) and by the webhook receiver (``stripe_webhooks``), both
through ``apply_event``: once per event id, never stepping back to an older state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from billctl.db.models import CreditPurchase, Tenant
from billctl.db.repositories import stripe as records
from billctl.db.uow import UnitOfWork
from billctl.errors import StripeFailure
from billctl.services.context import App, audit
from billctl.services.credits.purchase_events import apply_purchase_state
from billctl.services.stripe_sync.gateway import local_minor
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.mapping.purchases import purchase_of
from billctl.stripe.status import ATTENTION

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
    """Apply one Stripe event to the local invoice it concerns, once (deduplicated by event id), or
    to the credits purchase whose one-off invoice it is (paid: its grant is made, once).
    The caller's unit of work commits (with the cursor, for sync-status) or rolls back (dry run)."""
    obj = (event.get("data") or {}).get("object") or {}
    change = Change(event["id"], event.get("type", ""), None, None, None, None)
    if records.event_applied(session, event["id"]):
        change.applied, change.note = False, "duplicate event"
        return change
    invoice = None
    if obj.get("object") == "invoice":
        invoice = records.invoice_for_stripe(session, obj.get("id"), (obj.get("metadata") or {}).get(m.META_INVOICE))
    created = int(event.get("created") or 0)
    records.record_event(session, event["id"], change.event_type, created, source, invoice.number if invoice else None)
    if invoice is None and obj.get("object") == "invoice":
        purchase = records.purchase_for_stripe(session, obj.get("id"), purchase_of(obj))
        if purchase is not None:
            return _purchase_event(session, app, purchase, obj, change, source)
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


def _purchase_event(
    session: Session, app: App, purchase: CreditPurchase, obj: dict[str, Any], change: Change, source: str
) -> Change:
    """An event of a credits purchase's invoice (reported as ``credit-purchase-<id>``)."""
    tenant = session.get(Tenant, purchase.tenant_id)
    state = m.payment_state(obj, change.event_type)
    change.number, change.tenant = f"credit-purchase-{purchase.id}", tenant.key if tenant else None
    change.after, change.attempt_count, change.next_payment_attempt = (
        state.status,
        state.attempt_count,
        state.next_payment_attempt,
    )
    result = apply_purchase_state(
        session,
        app,
        purchase,
        change.tenant or "",
        obj,
        state.status,
        event=change.event_id,
        event_type=change.event_type,
        source=source,
    )
    change.before, change.note = result.before, result.note
    if not result.applied:
        change.applied, change.after = False, result.before
    return change


@dataclass
class StatusReport:
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    attention: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    cursor: str | None = None


@dataclass
class _Position:
    """Where the events cursor points (the last event applied)."""

    event_id: str
    created: int


def _pages(gw: Gateway, cursor: _Position | None) -> Iterator[list[dict[str, Any]]]:
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
    """Pull invoice events since the stored cursor and update local payment status. Each event and the
    cursor move commit in one unit of work, so a crash never skips or double-applies. A dry run
    applies them all in one unit of work that is rolled back at the end."""
    report = StatusReport(dry_run=gw.dry_run)
    with ExitStack() as stack:
        rehearsal = stack.enter_context(app.uow(dry_run=True)) if gw.dry_run else None

        def unit(*, readonly: bool = False) -> AbstractContextManager[UnitOfWork]:
            return nullcontext(rehearsal) if rehearsal is not None else app.uow(readonly=readonly)

        with unit(readonly=True) as uow:
            stored = records.cursor(uow.session, CURSOR)
            position = _Position(stored.event_id, stored.created) if stored is not None else None
        for page in _pages(gw, position):
            for event in page:
                created = int(event.get("created") or 0)
                with unit() as uow:
                    change = apply_event(uow.session, app, event, "sync")
                    report.events += 1
                    report.changes.append(change)
                    if on_change:
                        on_change(change)
                    records.move_cursor(uow.session, CURSOR, event["id"], created, app.now())
                    uow.flush()
                if position is None:
                    position = _Position(event["id"], created)
                else:  # the same object _pages reads, as it falls back to the cursor's time
                    position.event_id, position.created = event["id"], created
        report.cursor = position.event_id if position else None
        with unit(readonly=True) as uow:
            report.attention = attention(uow.session)
    return report


def attention(session: Session) -> list[dict[str, Any]]:
    """Live invoices with a payment problem (failed, uncollectible), oldest first."""
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
        for inv, ten in records.invoices_in_status(session, ATTENTION)
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
