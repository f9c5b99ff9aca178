"""The invoice's life cycle in billctl (not in Stripe): its statuses and the moves between them.

    finalized ──hold──▶ held ──release──▶ finalized
        │                 │
        └──────void───────┴──▶ void      (only an invoice nobody has paid; see DESIGN.md invariant 11)

Every place that reads or changes an invoice's status uses ``InvoiceStatus``; every change goes
through ``transition`` so that a move the life cycle does not allow is refused in one place. A
``StrEnum`` compares equal to its string value, so it is stored and queried as plain text.

A module of its own, importing nothing heavy, because the commands that only show a status import it
(start-up).
"""

from __future__ import annotations

from enum import StrEnum

from billctl.errors import Conflict


class InvoiceStatus(StrEnum):
    FINALIZED = "finalized"  # numbered and immutable; goes to Stripe
    HELD = "held"  # finalized, but held back from Stripe by a guardrail until an operator releases it
    VOID = "void"  # voided: its period may be finalized again; it keeps its number


# status -> {action: new status}
TRANSITIONS: dict[InvoiceStatus, dict[str, InvoiceStatus]] = {
    InvoiceStatus.FINALIZED: {"hold": InvoiceStatus.HELD, "void": InvoiceStatus.VOID},
    InvoiceStatus.HELD: {"release": InvoiceStatus.FINALIZED, "void": InvoiceStatus.VOID},
    InvoiceStatus.VOID: {},
}

# statuses that count as the period's invoice (one per tenant and period: a unique index excludes void)
LIVE = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.HELD})


def can(status: str, action: str) -> bool:
    """Whether ``action`` (hold, release, void) is allowed from ``status``."""
    return action in TRANSITIONS.get(InvoiceStatus(status), {})


def transition(status: str, action: str, *, number: str = "") -> InvoiceStatus:
    """The status after ``action``; ``Conflict`` (exit 9) when the life cycle does not allow it."""
    current = InvoiceStatus(status)
    after = TRANSITIONS[current].get(action)
    if after is None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        what = f"invoice {number}" if number else "the invoice"
        raise Conflict(f"cannot {action} {what}: it is {current.value} (allowed from {current.value}: {allowed})")
    return after
