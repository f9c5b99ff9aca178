"""Pricing periods into invoices: preview (dry run), finalize (immutable, numbered), void.

One use case per module:

* ``pricing``: a tenant's inputs assembled and priced (``price_period``): the one path preview,
  finalize, finalize --dry-run and recompute share;
* ``adjustments``: late usage of finalized periods billed as adjustment lines on the next invoice
  (the pure diff is in ``billctl.core.invoice``), so history is never rewritten;
* ``preview``: every tenant priced, nothing written; the finished-month rule (invariant 12);
* ``finalize`` and ``writes``: numbered, immutable invoices written in bulk;
* ``void``: voiding an invoice nobody has paid;
* ``queries``: invoices by number, listed; the tenants a command covers.

The names below are this package's public API (other services, the CLI and the tests import them
from ``billctl.services.invoices``).
"""

from __future__ import annotations

from billctl.core.invoice import INPUTS_SCHEMA, ROUNDING_RULE, adjustment_units, fingerprint, jsonable, segment_label
from billctl.core.money import amount_json as money_of
from billctl.core.money import money_json as money
from billctl.services.invoices.adjustments import adjustments_for
from billctl.services.invoices.finalize import CHUNK, FinalizeResult, finalize
from billctl.services.invoices.preview import (
    OPEN_PERIOD_HINT,
    OpenPeriod,
    iter_preview,
    open_periods,
    require_period_over,
)
from billctl.services.invoices.pricing import (
    CreditSource,
    Priced,
    PricingContext,
    ledger_credits,
    load_context,
    no_credits,
    plan_segments,
    price_period,
    stored_credits,
)
from billctl.services.invoices.queries import (
    billed_tenants,
    find_invoice,
    get_invoice,
    list_invoices,
    parse_period,
    tenant_id_of,
)
from billctl.services.invoices.void import void_invoice
from billctl.services.invoices.writes import reserve_sequence
from billctl.services.usage import usage_totals

__all__ = [
    "CHUNK",
    "CreditSource",
    "INPUTS_SCHEMA",
    "OPEN_PERIOD_HINT",
    "ROUNDING_RULE",
    "FinalizeResult",
    "OpenPeriod",
    "Priced",
    "PricingContext",
    "adjustment_units",
    "adjustments_for",
    "billed_tenants",
    "finalize",
    "find_invoice",
    "fingerprint",
    "get_invoice",
    "iter_preview",
    "jsonable",
    "ledger_credits",
    "list_invoices",
    "load_context",
    "money",
    "money_of",
    "no_credits",
    "open_periods",
    "parse_period",
    "plan_segments",
    "price_period",
    "require_period_over",
    "reserve_sequence",
    "stored_credits",
    "segment_label",
    "tenant_id_of",
    "usage_totals",
    "void_invoice",
]
