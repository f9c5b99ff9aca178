"""``stripe push``: bring every pending local invoice into Stripe, resuming wherever a run stopped.

For one invoice: find what an earlier run made (stored id, else metadata), else create the draft;
add the items the draft lacks; finalize it only once it matches the local invoice item by item and
in its totals (invariant 10); record the Stripe state. A void invoice is voided (or its draft
deleted) in Stripe instead (``void.py``). Then the credit notes whose invoice just became final.

Credits (issue 13): an invoice line, whatever its kind, becomes one Stripe invoice item
(``m.item_params``, non-discountable); a credit line is a negative item naming its grant
(``metadata[billctl_credit_grant]``), checked by ``m.draft_differences`` like the others, so Stripe's
total is billctl's. A credits purchase is not a local invoice: its one-off Stripe invoice is pushed by
``services.credits.purchase_flow``, and a ``push`` without a period completes the purchases whose
push stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import MoneyError, to_stripe_amount
from billctl.core.periods import Period
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.db.repositories import stripe as records
from billctl.errors import StripeFailure, redact
from billctl.services.context import App, audit
from billctl.services.stripe_sync.customers import CustomerFinder, ensure_customer, selected_tenants
from billctl.services.stripe_sync.gateway import StripeStore, find_remote, local_minor, reading, state_values
from billctl.services.stripe_sync.outcomes import Outcome, RunReport, failed_outcome
from billctl.services.stripe_sync.void import void_in_stripe
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.status import COLLECTABLE, StripeStatus

SEGMENT_KINDS = ("base", "usage", "minimum")  # lines priced within one plan segment


def invoice_in(invoice: Invoice, tenant: Tenant, lines: list[InvoiceLine]) -> m.InvoiceIn:
    """The local invoice as the pure Stripe rules take it."""
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
                grant_id=_grant_of(x),
                **_service_period(x),
            )
            for x in lines
        ),
    )


def _grant_of(line: InvoiceLine) -> int | None:
    """A credit line's grant (its detail names it: ``billctl.core.credits.credit_lines``)."""
    value = (line.detail or {}).get("grant_id") if line.kind == m.CREDIT_KIND else None
    return int(value) if value is not None else None


def _service_period(line: InvoiceLine) -> dict[str, datetime]:
    """A segment line's own service period (rating records the segment's start and end)."""
    detail = line.detail or {}
    if line.kind in SEGMENT_KINDS and detail.get("start") and detail.get("end"):
        return {
            "service_start": datetime.fromisoformat(detail["start"]),
            "service_end": datetime.fromisoformat(detail["end"]),
        }
    return {}


def push_invoice(app: App, gw: Gateway, invoice_id: int, store: StripeStore, customer_id: str | None = None) -> Outcome:
    """Bring one local invoice into Stripe, resuming wherever an earlier run stopped."""
    with reading(app) as session:
        invoice, tenant = records.invoice_and_tenant(session, invoice_id)
        lines = records.invoice_lines(session, invoice_id)
    inv = invoice_in(invoice, tenant, lines)
    out = Outcome("invoice", inv.number, tenant.key, "pushed", total_minor=inv.total_minor, currency=inv.currency)
    if invoice.status == InvoiceStatus.VOID:
        return void_in_stripe(app, gw, invoice, tenant.stripe_customer_id or customer_id, store, out)
    customer_id = customer_id or tenant.stripe_customer_id
    if not customer_id:
        customer_id = ensure_customer(app, gw, tenant, store).stripe_id
    if not customer_id:  # ensure_customer always returns one (or raises)
        raise StripeFailure(f"no Stripe customer for tenant {tenant.key}")

    remote = find_remote(gw, invoice, customer_id, out)
    fresh = False
    if remote is None:
        if invoice.stripe_push_started_at is None:
            store.invoice(invoice_id, stripe_push_started_at=app.now())  # from now on, look up before creating
        params = m.invoice_params(inv, customer_id, gw.settings.collection_method, gw.settings.days_until_due)
        remote = gw.create_invoice(params, m.invoice_key(inv.number, "create", params))
        fresh = True
    if remote["id"] != invoice.stripe_invoice_id:
        store.invoice(
            invoice_id, stripe_invoice_id=remote["id"], stripe_status=remote.get("status") or StripeStatus.DRAFT
        )
    out.stripe_id = remote["id"]
    resumed = invoice.stripe_push_started_at is not None or invoice.stripe_invoice_id is not None

    if remote.get("status") == StripeStatus.DRAFT:
        try:
            _complete_draft(gw, inv, lines, remote["id"], customer_id, store, fresh)
        except MoneyError as exc:
            raise StripeFailure(f"{exc}; not sent (void the invoice and finalize it again)") from None
        remote = gw.finalize_invoice(remote["id"], m.finalize_params(), m.invoice_key(inv.number, "finalize"), remote)
        out.action = "completed" if resumed else "pushed"
    else:
        out.action = "already in stripe"
    values = {**state_values(remote), "stripe_error": None}
    with store.tx() as s:
        if s is not None:
            records.update_invoice(s, invoice_id, **values)
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


def _complete_draft(
    gw: Gateway,
    inv: m.InvoiceIn,
    rows: list[InvoiceLine],
    draft_id: str,
    customer_id: str,
    store: StripeStore,
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


def pending_invoices(app: App, period: Period | None = None, tenant_key: str | None = None) -> list[tuple[int, int]]:
    """(invoice id, tenant id) of invoices that push has work for, oldest first: finalized ones not
    yet final in Stripe, void ones whose Stripe invoice is still open, and void ones that may have
    left a draft in Stripe (to delete)."""
    tenant_id = selected_tenants(app, tenant_key)[0].id if tenant_key else None
    with reading(app) as session:
        return records.pending_invoice_ids(
            session,
            unfinished={StripeStatus.DRAFT},
            to_void=COLLECTABLE | {StripeStatus.DRAFT},
            period=str(period) if period is not None else None,
            tenant_id=tenant_id,
        )


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
    """Push every pending invoice, then the credit notes whose invoice is final in Stripe, then (when
    no period is given) the credits purchases whose push stopped. A failure on one is recorded and
    the others go on; a bad key or an unreachable Stripe stops the run (nothing else could succeed)."""
    started = time.perf_counter()
    report = RunReport(dry_run=gw.dry_run)
    store = StripeStore(app, gw.dry_run)
    todo = pending_invoices(app, period, tenant_key)
    # customers first, one per tenant, so parallel invoice pushes never race to create one
    tenant_ids = sorted({t for _, t in todo})
    customers: dict[int, str | None] = {}
    with reading(app) as session:
        tenants = records.tenants_by_id(session, tenant_ids)
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
    if period is None:  # credits purchases whose push stopped (they belong to no period)
        from billctl.services.credits.purchase_flow import push_pending_purchases

        report.outcomes.extend(push_pending_purchases(app, gw, store, tenant_key, on_outcome))
    report.count_requests(gw)
    report.seconds = time.perf_counter() - started
    return report


def _failed(app: App, invoice_id: int, reason: str, store: StripeStore) -> Outcome:
    """The invoice failed to push: the reason is kept (``invoice.stripe_error``) until a push succeeds."""
    with reading(app) as session:
        invoice, tenant = records.invoice_and_tenant(session, invoice_id)
    store.invoice(invoice_id, stripe_error=redact(reason)[:2000])
    return failed_outcome("invoice", invoice, tenant.key, invoice.stripe_invoice_id, reason)
