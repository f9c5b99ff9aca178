"""Stripe's own statuses of an invoice, as billctl records them in ``invoice.stripe_status``.

These are Stripe's words (plus two of billctl's: ``payment_failed``, an open invoice whose last
charge failed, and ``deleted``, a draft push deleted after a local void). The LOCAL life cycle of an
invoice (finalized, held, void) is ``billctl.core.invoice.InvoiceStatus``: a different thing. A
``StrEnum`` compares equal to its string value, so it is stored and queried as plain text.
"""

from __future__ import annotations

from enum import StrEnum


class StripeStatus(StrEnum):
    DRAFT = "draft"  # items may still be added; never charged
    OPEN = "open"  # finalized in Stripe, waiting for payment
    PAYMENT_FAILED = "payment_failed"  # billctl's: open, and a charge attempt failed
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"
    DELETED = "deleted"  # billctl's: the draft was deleted in Stripe (its invoice was voided here)


# how far along an invoice is: an event never moves it back within the same second
STATUS_RANK: dict[str, int] = {
    StripeStatus.DRAFT: 0,
    StripeStatus.OPEN: 1,
    StripeStatus.PAYMENT_FAILED: 2,
    StripeStatus.PAID: 3,
    StripeStatus.VOID: 3,
    StripeStatus.UNCOLLECTIBLE: 3,
}
# payment problems an operator must look at
ATTENTION = frozenset({StripeStatus.PAYMENT_FAILED, StripeStatus.UNCOLLECTIBLE})
# final in Stripe: what a finalized local invoice should be there
FINAL = frozenset({StripeStatus.OPEN, StripeStatus.PAID, StripeStatus.UNCOLLECTIBLE})
# still collectable (a void here must void it there too)
COLLECTABLE = frozenset({StripeStatus.OPEN, StripeStatus.PAYMENT_FAILED, StripeStatus.UNCOLLECTIBLE})
