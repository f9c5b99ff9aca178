"""Reading credits: balances (what is available now, what waits for its effective date, what has
expired but is not yet written off) and a tenant's ledger with its running balance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billctl.core import credits as core
from billctl.core.money import from_minor
from billctl.db.repositories import credits as repo
from billctl.services.context import App
from billctl.services.credits.common import Book, book, tenant

ZERO = Decimal(0)


@dataclass(frozen=True)
class Balance:
    tenant: str
    currency: str
    balance: Decimal  # the ledger's sum: available + scheduled + expired
    available: Decimal  # in grants active now
    promotional: Decimal  # of available
    purchased: Decimal  # of available
    scheduled: Decimal  # in grants not effective yet
    expired: Decimal  # in expired grants, written off at the next period close
    grants: int


@dataclass(frozen=True)
class LedgerLine:
    id: int
    at: datetime
    kind: str
    grant_id: int
    credit_kind: str
    amount: Decimal  # signed
    balance_after: Decimal  # the running balance: the last one is the tenant's balance
    invoice: str | None
    source: str
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class Ledger:
    tenant: str
    currency: str
    balance: Decimal
    lines: list[LedgerLine]


def balance_of(b: Book, now: datetime) -> Balance:
    left = core.remainders(b.entries)
    grants = b.grants

    def total(keep: Callable[[core.Grant], bool]) -> Decimal:
        return sum((left.get(g.id, ZERO) for g in grants if keep(g)), from_minor(0, b.currency))

    return Balance(
        tenant=b.tenant.key,
        currency=b.currency,
        balance=b.balance(),
        available=total(lambda g: g.active_at(now)),
        promotional=total(lambda g: g.active_at(now) and g.kind == core.CreditKind.PROMOTIONAL),
        purchased=total(lambda g: g.active_at(now) and g.kind == core.CreditKind.PURCHASED),
        scheduled=total(lambda g: now < g.effective_at),
        expired=total(lambda g: g.expired_by(now)),
        grants=len(grants),
    )


def balances(app: App, tenant_key: str | None = None, *, now: datetime | None = None) -> list[Balance]:
    """One tenant's balance, or every tenant's that has ever been granted credits."""
    now = now or app.now()
    with app.uow(readonly=True) as uow:
        rows = [tenant(uow.session, tenant_key)] if tenant_key else repo.tenants_with_credits(uow.session)
        return [balance_of(book(uow.session, row), now) for row in rows]


def ledger(app: App, tenant_key: str) -> Ledger:
    with app.uow(readonly=True) as uow:
        b = book(uow.session, tenant(uow.session, tenant_key))
        numbers = repo.invoice_numbers(uow.session, (e.invoice_id for e in b.entry_rows))
        kinds = {g.id: g.kind for g in b.grant_rows if g.id is not None}
        running = 0
        lines = []
        for e in b.entry_rows:
            assert e.id is not None
            running += e.amount_minor
            lines.append(
                LedgerLine(
                    id=e.id,
                    at=e.at,
                    kind=e.kind,
                    grant_id=e.grant_id,
                    credit_kind=kinds[e.grant_id],
                    amount=from_minor(e.amount_minor, e.currency),
                    balance_after=from_minor(running, e.currency),
                    invoice=numbers.get(e.invoice_id) if e.invoice_id is not None else None,
                    source=e.source,
                    actor=e.actor,
                    created_at=e.created_at,
                )
            )
        return Ledger(tenant=b.tenant.key, currency=b.currency, balance=b.balance(), lines=lines)
