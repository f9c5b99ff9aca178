"""What a Stripe run reports: one outcome per customer, invoice or credit note, and the run's counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billctl.errors import redact
from billctl.stripe.client import Gateway


@dataclass
class Outcome:
    kind: str  # customer | invoice | credit_note | credit_purchase
    ref: str  # tenant key, invoice or credit note number, credit-purchase-<id>
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

    def count_requests(self, gw: Gateway) -> None:
        """Take the gateway's request counters into the report."""
        self.requests, self.retries, self.writes_skipped = gw.requests, gw.retries, gw.writes_skipped


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
