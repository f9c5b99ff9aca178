"""Granting credits: checked where they enter (amount, currency, kind, dates, priority, reason), one
grant row and its ledger entry in one transaction, recorded in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session

from billctl.core import bounds
from billctl.core import credits as core
from billctl.core.money import from_minor, parse_decimal, to_minor
from billctl.db.models import CreditGrant, CreditLedgerEntry
from billctl.db.repositories import credits as repo
from billctl.errors import BadInput
from billctl.services.context import App, audit
from billctl.services.credits.common import book, day_start, refusals, tenant


@dataclass(frozen=True)
class GrantRequest:
    amount: str
    kind: str
    reason: str
    currency: str | None = None  # default: the tenant's
    effective: str | None = None  # YYYY-MM-DD in the tenant's time zone; default: now
    expires: str | None = None  # YYYY-MM-DD: the grant expires as that day starts (tenant's time zone)
    priority: int = core.PRIORITY_DEFAULT


@dataclass(frozen=True)
class GrantView:
    """A grant as it was written (plain values: still readable after a dry run's rollback)."""

    id: int
    currency: str
    amount: Decimal
    kind: str
    effective_at: datetime
    expires_at: datetime | None
    priority: int
    reason: str


@dataclass(frozen=True)
class GrantResult:
    tenant: str
    grant: GrantView
    balance: Decimal  # the tenant's ledger balance afterwards
    dry_run: bool


def grant_credits(
    app: App, tenant_key: str, request: GrantRequest, *, dry_run: bool = False, now: datetime | None = None
) -> GrantResult:
    """Grant credits to a tenant. Bad input names its field (amount, currency, kind, effective,
    expires, priority, reason) and writes nothing."""
    now = now or app.now()
    problem = bounds.text_problem(request.reason, "reason", bounds.REASON, required=True)
    if problem:
        raise BadInput(problem, field="reason", hint="say why the credit is given; the audit log keeps it")
    with refusals():
        amount = parse_decimal(request.amount, field="amount")
    with app.uow(dry_run=dry_run) as uow:
        row = tenant(uow.session, tenant_key)
        assert row.id is not None
        effective_at = day_start(request.effective, row.timezone, "effective") if request.effective else now
        expires_at = day_start(request.expires, row.timezone, "expires") if request.expires else None
        with refusals():
            kind = core.validate_grant(
                amount=amount,
                currency=request.currency or row.currency,
                tenant_currency=row.currency,
                kind=request.kind,
                effective_at=effective_at,
                expires_at=expires_at,
                priority=request.priority,
            )
        repo.lock_tenant_credits(uow.session, row.id)
        grant = repo.add_grant(
            uow.session,
            CreditGrant(
                tenant_id=row.id,
                currency=row.currency,
                amount_minor=to_minor(amount, row.currency),
                kind=kind,
                priority=request.priority,
                effective_at=effective_at,
                expires_at=expires_at,
                reason=request.reason,
                actor=app.actor,
            ),
        )
        record_grant(uow.session, grant, actor=app.actor)
        audit(
            uow.session,
            app,
            "credits.grant",
            "tenant",
            row.key,
            reason=request.reason,
            grant_id=grant.id,
            kind=str(kind),
            amount=str(from_minor(to_minor(amount, row.currency), row.currency)),
            currency=row.currency,
            priority=request.priority,
            effective_at=effective_at.isoformat(),
            expires_at=expires_at.isoformat() if expires_at else None,
        )
        assert grant.id is not None
        view = GrantView(
            id=grant.id,
            currency=row.currency,
            amount=from_minor(grant.amount_minor, row.currency),
            kind=grant.kind,
            effective_at=effective_at,
            expires_at=expires_at,
            priority=grant.priority,
            reason=grant.reason,
        )
        result = GrantResult(tenant=row.key, grant=view, balance=book(uow.session, row).balance(), dry_run=dry_run)
    return result


def record_grant(session: Session, grant: CreditGrant, *, actor: str) -> None:
    """The grant's own ledger entry (+ its amount), keyed ``grant:<id>``: written once."""
    assert grant.id is not None
    repo.add_entries(
        session,
        [
            CreditLedgerEntry(
                key=f"grant:{grant.id}",
                tenant_id=grant.tenant_id,
                grant_id=grant.id,
                kind=core.EntryKind.GRANT,
                amount_minor=grant.amount_minor,
                currency=grant.currency,
                at=grant.effective_at,
                actor=actor,
            )
        ],
    )
