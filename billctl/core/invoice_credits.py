"""Prepaid credits on an invoice: the draft rebuilt with its credit lines, what the invoice stores
about the credits it drew, and how a credit note splits into cash and credits. Pure.

The draw-down itself (which grants, in which order, how much, tax) is ``billctl.core.credits``
(``apply_credits``); this module turns its ``Application`` into invoice lines and back.

**Lines of an invoice with credits**, in this order (``credited_draft``):

1. the charge lines as rating made them (base, usage, minimum, discounts, adjustments): they sum
   to the charges ``S``;
2. one ``credit`` line per promotional grant drawn (negative): they reduce the taxable amount;
3. the tax line, on the taxable amount ``S - P`` (rounded once, half-up);
4. one ``credit`` line per purchased grant drawn (negative): they settle part of the amount due.

The invoice's ``subtotal`` is the taxable amount (lines 1 and 2), its ``tax`` line 3, its
``total`` the amount left to pay (every line): ``total = subtotal + tax - purchased credits``. An
invoice that drew nothing is exactly the draft rating made (same lines, same stored inputs).

**What the invoice stores** (``InputCredit``, in ``inputs["credits"]``, covered by the fingerprint):
for each grant drawn, its id, kind, amount, what was left of it before this invoice, what this
invoice drew, its effective and expiry dates, priority and reason: enough to draw the same credits
again without the ledger (``stored_application``), which ``invoices explain`` and ``invoices
recompute`` do. Grants that could have been drawn but were not (nothing was left to pay) are not
stored: they changed nothing.

**Credit notes** (``split_credit``): a credit note credits the invoice's subtotal and tax (what the
customer was billed after promotional credits). Of that, the invoice's ``total`` was due in cash and
the rest was paid with purchased credits. A credit note gives back cash first, up to what was due in
cash over all the invoice's credit notes; what it credits beyond that goes back to the purchased
grants the invoice drew on (the last drawn first). Promotional credits work as a discount: a credit
note does not give them back (voiding the invoice does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billctl.core.credits import (
    Application,
    CreditKind,
    CreditLine,
    Entry,
    EntryKind,
    Grant,
    apply_credits,
)
from billctl.core.types import InvoiceDraft, Line

ONE = Decimal(1)
ZERO = Decimal(0)


@dataclass(frozen=True)
class InputCredit:
    """One grant an invoice drew on, as stored in its inputs."""

    grant: int
    kind: CreditKind
    amount: Decimal  # the grant's amount
    remaining_before: Decimal  # what was left of it before this invoice
    drawn: Decimal  # what this invoice drew
    effective_at: datetime
    expires_at: datetime | None
    priority: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "grant": self.grant,
            "kind": str(self.kind),
            "amount": str(self.amount),
            "remaining_before": str(self.remaining_before),
            "drawn": str(self.drawn),
            "effective_at": self.effective_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "priority": self.priority,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InputCredit:
        return cls(
            grant=int(doc["grant"]),
            kind=CreditKind(doc["kind"]),
            amount=Decimal(doc["amount"]),
            remaining_before=Decimal(doc["remaining_before"]),
            drawn=Decimal(doc["drawn"]),
            effective_at=datetime.fromisoformat(doc["effective_at"]),
            expires_at=datetime.fromisoformat(doc["expires_at"]) if doc.get("expires_at") else None,
            priority=int(doc["priority"]),
            reason=str(doc.get("reason", "")),
        )


def input_credits(application: Application, grants: Mapping[int, Grant]) -> tuple[InputCredit, ...]:
    """What an invoice stores about the grants ``application`` drew on, in the order drawn."""
    out = []
    for draw in application.draws:
        grant = grants[draw.grant_id]
        out.append(
            InputCredit(
                grant=grant.id,
                kind=draw.kind,
                amount=grant.amount,
                remaining_before=draw.remaining_after + draw.amount,
                drawn=draw.amount,
                effective_at=grant.effective_at,
                expires_at=grant.expires_at,
                priority=grant.priority,
                reason=grant.reason,
            )
        )
    return tuple(out)


def stored_grants(currency: str, credits: Sequence[InputCredit]) -> tuple[list[Grant], list[Entry]]:
    """The grants and a ledger that leave each stored grant with what it had before the invoice."""
    grants, entries = [], []
    for c in credits:
        grant = Grant(c.grant, currency, c.amount, c.kind, c.effective_at, c.expires_at, c.priority, c.reason)
        grants.append(grant)
        entries.append(Entry(c.grant, EntryKind.GRANT, c.amount, c.effective_at))
        if c.amount != c.remaining_before:
            entries.append(Entry(c.grant, EntryKind.DRAW, c.remaining_before - c.amount, c.effective_at))
    return grants, entries


def stored_application(
    credits: Sequence[InputCredit], *, currency: str, charges: Decimal, tax_rate: Decimal, period_end: datetime
) -> tuple[Application, dict[int, Grant]]:
    """The draw-down of an invoice's stored credits on ``charges``: the same order and rules as at
    finalize, from what each grant had then (not from today's ledger)."""
    grants, entries = stored_grants(currency, credits)
    application = apply_credits(
        currency=currency,
        charges=charges,
        tax_rate=tax_rate,
        grants=grants,
        entries=entries,
        period_end=period_end,
    )
    return application, {g.id: g for g in grants}


def _line(credit: CreditLine) -> Line:
    return Line(
        kind="credit",
        description=credit.description,
        quantity=ONE,
        unit_price=None,
        amount=credit.amount,
        unrounded=credit.amount,
        detail=dict(credit.detail),
    )


def credited_draft(draft: InvoiceDraft, application: Application, lines: Sequence[CreditLine]) -> InvoiceDraft:
    """``draft`` (rating's: charges and tax) with the credits of ``application`` drawn: promotional
    credit lines, the tax on the taxable amount, purchased credit lines (module docstring). The
    same draft when nothing was drawn."""
    if not application.draws:
        return draft
    if application.charges != draft.subtotal:
        raise ValueError(f"credits were drawn on charges of {application.charges}, the draft has {draft.subtotal}")
    charges = [x for x in draft.lines if x.kind != "tax"]
    tax_lines = [x for x in draft.lines if x.kind == "tax"]
    before = [_line(c) for c in lines if c.before_tax]
    after = [_line(c) for c in lines if not c.before_tax]
    if application.promotional and tax_lines:
        rate = application.tax_rate
        taxable = application.taxable
        tax_lines = [
            Line(
                kind="tax",
                description=f"Tax {rate.normalize():f} % of {taxable}",
                quantity=ONE,
                unit_price=None,
                amount=application.tax,
                unrounded=taxable * rate / 100,
                detail={
                    "rate_percent": str(rate),
                    "on": str(taxable),
                    "charges": str(application.charges),
                    "promotional_credits": str(application.promotional),
                },
            )
        ]
    elif application.tax != draft.tax:  # no promotional credit: rating's tax is the tax
        raise ValueError(f"credits computed a tax of {application.tax}, rating {draft.tax}")
    return replace(
        draft,
        lines=tuple(charges + before + tax_lines + after),
        subtotal=application.taxable,
        tax=application.tax,
        total=application.total,
    )


def purchased_drawn(credits: Sequence[InputCredit]) -> Decimal:
    return sum((c.drawn for c in credits if c.kind == CreditKind.PURCHASED), ZERO)


def promotional_drawn(credits: Sequence[InputCredit]) -> Decimal:
    return sum((c.drawn for c in credits if c.kind == CreditKind.PROMOTIONAL), ZERO)


def split_credit(cash_due: int, credited_before: int, amount: int) -> tuple[int, int]:
    """A credit note of ``amount`` (minor units, tax included) on an invoice whose ``cash_due`` was
    its total, after earlier credit notes of ``credited_before``: (given back as cash, given back as
    purchased credits). Cash first, up to what was due in cash over all the invoice's notes."""
    cash_left = max(cash_due - credited_before, 0)
    cash = min(max(amount, 0), cash_left)
    return cash, max(amount, 0) - cash
