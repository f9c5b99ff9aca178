"""What the credits services share: the tenant look-up, one tenant's grants and ledger as the core
sees them, and the core's refusals as operator errors naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session

from billctl.core import credits as core
from billctl.core import periods
from billctl.core.bounds import quote
from billctl.core.money import from_minor
from billctl.db.models import CreditGrant, CreditLedgerEntry, Tenant
from billctl.db.repositories import credits as repo
from billctl.errors import BadInput, CreditsError, MoneyError, NotFound


def tenant(session: Session, key: str) -> Tenant:
    row = repo.tenant_by_key(session, key)
    if row is None or row.id is None:
        raise NotFound(f"unknown tenant {quote(key)}", hint="see `billctl tenants list`", field="tenant")
    return row


def day_start(text: str, tz: str, field: str) -> datetime:
    """The start of day ``text`` (YYYY-MM-DD) in the tenant's zone; BadInput naming ``field`` otherwise."""
    try:
        return periods.day_start(text, tz)
    except periods.PeriodError as exc:
        raise BadInput(f"{field}: {exc.message}", field=field) from None


@contextmanager
def refusals() -> Iterator[None]:
    """The core's refusals (a grant that cannot be made ...) as BadInput (exit 3) naming the field."""
    try:
        yield
    except CreditsError as exc:
        raise BadInput(exc.message, hint=exc.hint, field=exc.field) from None
    except MoneyError as exc:
        raise BadInput(exc.message, hint=exc.hint, field="amount") from None


@dataclass
class Book:
    """One tenant's grants and ledger, as rows and as the core's types."""

    tenant: Tenant
    grant_rows: list[CreditGrant]
    entry_rows: list[CreditLedgerEntry]

    @property
    def grants(self) -> list[core.Grant]:
        return [repo.core_grant(g) for g in self.grant_rows]

    @property
    def entries(self) -> list[core.Entry]:
        return [repo.core_entry(e) for e in self.entry_rows]

    @property
    def by_id(self) -> dict[int, core.Grant]:
        return {g.id: g for g in self.grants}

    @property
    def currency(self) -> str:
        return self.tenant.currency

    def balance(self) -> Decimal:
        return from_minor(sum(e.amount_minor for e in self.entry_rows), self.currency)


def book(session: Session, row: Tenant, *, lock: bool = False) -> Book:
    """The tenant's grants and ledger; ``lock``: first take the tenant's credits lock (writers)."""
    assert row.id is not None
    if lock:
        repo.lock_tenant_credits(session, row.id)
    return Book(row, repo.grants(session, row.id), repo.entries(session, row.id))
