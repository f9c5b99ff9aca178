"""How a Stripe invoice's state maps to the local payment status, and which event wins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billctl.stripe.status import STATUS_RANK, StripeStatus


@dataclass(frozen=True)
class PaymentState:
    status: str  # a StripeStatus: draft | open | payment_failed | paid | uncollectible | void
    attempt_count: int
    next_payment_attempt: datetime | None


def payment_state(invoice: Mapping[str, Any], event_type: str | None = None) -> PaymentState:
    status = invoice.get("status") or StripeStatus.DRAFT
    attempts = int(invoice.get("attempt_count") or 0)
    nxt = invoice.get("next_payment_attempt")
    if status == StripeStatus.OPEN and (
        event_type == "invoice.payment_failed" or (attempts > 0 and (invoice.get("amount_remaining") or 0) > 0)
    ):
        status = StripeStatus.PAYMENT_FAILED
    return PaymentState(status, attempts, datetime.fromtimestamp(nxt, UTC) if nxt else None)


def newer(current_at: int | None, current_status: str | None, event_at: int, new_status: str) -> bool:
    """Apply an event only if it is not older than what was applied (events can arrive out of order);
    within the same second, never step back from a settled state to an earlier one."""
    if current_at is None or current_status is None:
        return True
    if event_at != current_at:
        return event_at > current_at
    return STATUS_RANK.get(new_status, 0) >= STATUS_RANK.get(current_status, 0)
