"""Pure rules of the Stripe integration: plain data in, plain data out, no I/O.

- ``customers``: what a tenant looks like as a Stripe customer, and how it is recognised;
- ``invoices``: a local invoice line as a Stripe invoice item, and what a Stripe draft must look
  like before it may be finalized (DESIGN.md invariant 10);
- ``payment``: how a Stripe invoice's state maps to the local payment status;
- ``reconcile``: the diff between local invoices and Stripe's.

The idempotency key of every write lives in ``billctl.stripe.idempotency`` (re-exported here, as
callers have always found them), Stripe's statuses in ``billctl.stripe.status``.

Amounts: local invoices hold billctl's minor units; Stripe's API amounts follow Stripe's rules for
the currency (``billctl.core.money.to_stripe_amount``: UGX is sent ×100, for instance).
"""

from __future__ import annotations

from billctl.stripe.idempotency import customer_create_key, customer_update_key, invoice_key, item_key
from billctl.stripe.mapping.customers import (
    customer_changes,
    customer_create_params,
    customer_params,
    customer_search_query,
    customer_view,
    pick_customer,
)
from billctl.stripe.mapping.invoices import (
    CREDIT_KIND,
    DESCRIPTION_MAX,
    MINIMUM_CHARGE_MINOR,
    InvoiceIn,
    LineIn,
    balance_applied,
    below_minimum,
    draft_differences,
    finalize_params,
    invoice_params,
    item_description,
    item_params,
    items_by_position,
    line_period,
    match_invoices,
    show_amount,
)
from billctl.stripe.mapping.metadata import (
    META_CREDIT_GRANT,
    META_CREDIT_PURCHASE,
    META_INVOICE,
    META_LINE,
    META_TENANT,
)
from billctl.stripe.mapping.payment import PaymentState, newer, payment_state
from billctl.stripe.mapping.reconcile import Drift, LocalInvoice, reconcile
from billctl.stripe.status import ATTENTION, STATUS_RANK

__all__ = [
    "ATTENTION",
    "CREDIT_KIND",
    "DESCRIPTION_MAX",
    "META_CREDIT_GRANT",
    "META_CREDIT_PURCHASE",
    "META_INVOICE",
    "META_LINE",
    "META_TENANT",
    "MINIMUM_CHARGE_MINOR",
    "STATUS_RANK",
    "Drift",
    "InvoiceIn",
    "LineIn",
    "LocalInvoice",
    "PaymentState",
    "balance_applied",
    "below_minimum",
    "customer_changes",
    "customer_create_key",
    "customer_create_params",
    "customer_params",
    "customer_search_query",
    "customer_update_key",
    "customer_view",
    "draft_differences",
    "finalize_params",
    "invoice_key",
    "invoice_params",
    "item_description",
    "item_key",
    "item_params",
    "items_by_position",
    "line_period",
    "match_invoices",
    "newer",
    "payment_state",
    "pick_customer",
    "reconcile",
    "show_amount",
]
