"""Stripe orchestration: customers, invoice push, payment outcomes, reconciliation.

Every Stripe write is idempotent (DESIGN.md invariant 9): its idempotency key comes from local ids,
the step and a digest of its parameters (``billctl.stripe.idempotency``), each Stripe id is committed
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

The package, by use case: ``gateway`` (the gateway from the settings, the local store of Stripe ids,
amounts read back), ``outcomes`` (what a run reports), ``customers``, ``push`` and ``void`` (invoices
into Stripe), ``status`` (payment outcomes from events: sync-status and the webhook receiver) and
``reconcile``. Every name other modules use is importable from ``billctl.services.stripe_sync``.

Prepaid credits (issue 13): credit lines go to Stripe as negative, non-discountable items; a credits
purchase's one-off invoice is pushed by ``billctl.services.credits.purchase_flow`` (with this
package's gateway, store and customers), and its payment events, read by ``status``, make its grant
once (``billctl.services.credits.purchase_events``).
"""

from __future__ import annotations

from billctl.errors import DriftFound, PartialFailure
from billctl.services.stripe_sync.customers import CustomerFinder, ensure_customer, sync_customers
from billctl.services.stripe_sync.gateway import (
    StripeStore,
    gateway,
    local_minor,
    optional_gateway,
    reading,
    state_values,
)
from billctl.services.stripe_sync.outcomes import Outcome, RunReport, failed_outcome
from billctl.services.stripe_sync.push import SEGMENT_KINDS, invoice_in, pending_invoices, push, push_invoice
from billctl.services.stripe_sync.reconcile import ReconcileReport, reconcile
from billctl.services.stripe_sync.status import (
    CURSOR,
    EVENT_TYPES,
    Change,
    StatusReport,
    apply_event,
    attention,
    attention_doc,
    sync_status,
)
from billctl.services.stripe_sync.void import void_in_stripe

__all__ = [
    "CURSOR",
    "EVENT_TYPES",
    "SEGMENT_KINDS",
    "Change",
    "CustomerFinder",
    "DriftFound",
    "Outcome",
    "PartialFailure",
    "ReconcileReport",
    "RunReport",
    "StatusReport",
    "StripeStore",
    "apply_event",
    "attention",
    "attention_doc",
    "ensure_customer",
    "failed_outcome",
    "gateway",
    "invoice_in",
    "local_minor",
    "optional_gateway",
    "pending_invoices",
    "push",
    "push_invoice",
    "reading",
    "reconcile",
    "state_values",
    "sync_customers",
    "sync_status",
    "void_in_stripe",
]
