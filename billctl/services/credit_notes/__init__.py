"""Corrections of finalized invoices: credit notes (local, numbered, immutable; then in Stripe) and
the Stripe side of voiding (DESIGN.md invariants 9 and 11).

* ``issue``: a credit note planned by the pure ``billctl.core.credit`` and written under the
  tenant's lock, then put into Stripe when its invoice is there;
* ``push``: a local credit note into Stripe, idempotently (an idempotency key from the local
  number, the step and a digest of the parameters; a re-run first looks it up by metadata; the
  Stripe id stored as soon as Stripe returns it), pending ones for `stripe push`, reconcile;
* ``void``: voiding an invoice that is in Stripe asks Stripe first (the local payment status may
  be stale): paid or partly paid is refused (a credit note is the way); an open one is voided in
  Stripe, then locally, so a payment cannot slip in between;
* ``queries``: credit notes by invoice, what they took, listed.
"""

from __future__ import annotations

from billctl.services.credit_notes.issue import DEFAULT_SETTLE, SETTLE_CHOICES, Issued, issue, parse_amount
from billctl.services.credit_notes.push import (
    FINAL_IN_STRIPE,
    gateway_or_none,
    in_stripe,
    pending,
    push_credit_note,
    push_pending,
    reconcile,
)
from billctl.services.credit_notes.queries import (
    NoteRow,
    credited,
    credited_totals,
    list_notes,
    notes_by_invoice,
    notes_of,
)
from billctl.services.credit_notes.void import check_voidable, void_in_stripe_first

__all__ = [
    "DEFAULT_SETTLE",
    "FINAL_IN_STRIPE",
    "SETTLE_CHOICES",
    "Issued",
    "NoteRow",
    "check_voidable",
    "credited",
    "credited_totals",
    "gateway_or_none",
    "in_stripe",
    "issue",
    "list_notes",
    "notes_by_invoice",
    "notes_of",
    "parse_amount",
    "pending",
    "push_credit_note",
    "push_pending",
    "reconcile",
    "void_in_stripe_first",
]
