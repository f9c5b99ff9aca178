"""Drawing credits at finalize and giving them back on a void or a credit note, inside the caller's
unit of work (the invoice services call these in the transaction that writes or corrects the invoice).

- ``plan_draws`` computes what the tenant's credits cover on an invoice (the core's draw-down, after
  taking the tenant's credits lock), without writing: preview, explain and recompute call it too.
- ``record_draws`` writes one ``draw`` entry per grant used, keyed ``draw:<invoice id>:<grant id>``,
  in the same transaction as the invoice: a finalize killed before its commit leaves neither, a
  re-run writes both once; a second call for the same invoice writes nothing.
- ``return_credits`` gives back what an invoice drew (all of it for a void, ``amount`` for a credit
  note), to the grants it came from, keyed ``return:<invoice id>:<source>:<grant id>``; the core
  never gives back more than was drawn, so nothing comes back twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billctl.core import credits as core
from billctl.core.money import to_minor
from billctl.db.models import CreditLedgerEntry, Invoice, Tenant
from billctl.db.repositories import credits as repo
from billctl.db.uow import UnitOfWork
from billctl.errors import Conflict
from billctl.services.credits.common import book


@dataclass(frozen=True)
class PlannedDraws:
    application: core.Application
    lines: list[core.CreditLine]
    grants: dict[int, core.Grant] = field(default_factory=dict)  # the tenant's grants by id


def plan_draws(
    uow: UnitOfWork, tenant: Tenant, *, period_end: datetime, charges: Decimal, tax_rate: Decimal, lock: bool = True
) -> PlannedDraws:
    """What the tenant's credits do to an invoice of a period ending at ``period_end`` with
    ``charges`` (its subtotal before tax) and ``tax_rate`` (percent). ``lock`` (finalize): take the
    tenant's credits lock first, so what is planned is still there when it is recorded."""
    b = book(uow.session, tenant, lock=lock)
    application = core.apply_credits(
        currency=tenant.currency,
        charges=charges,
        tax_rate=tax_rate,
        grants=b.grants,
        entries=b.entries,
        period_end=period_end,
    )
    grants = b.by_id
    return PlannedDraws(application, core.credit_lines(application, grants), grants)


def record_draws(uow: UnitOfWork, invoice: Invoice, application: core.Application, *, at: datetime, actor: str) -> int:
    """Write the draws of ``application`` on ``invoice`` (already flushed, so it has an id); returns
    how many entries were written (0 when they already were)."""
    assert invoice.id is not None
    keys = {d.grant_id: f"draw:{invoice.id}:{d.grant_id}" for d in application.draws}
    existing = repo.entry_keys(uow.session, keys.values())
    if existing and existing != set(keys.values()):
        raise Conflict(f"invoice {invoice.number} already drew on other grants: its credits cannot change")
    if existing:
        return 0
    rows = [
        CreditLedgerEntry(
            key=keys[d.grant_id],
            tenant_id=invoice.tenant_id,
            grant_id=d.grant_id,
            kind=core.EntryKind.DRAW,
            amount_minor=-to_minor(d.amount, invoice.currency),
            currency=invoice.currency,
            at=at,
            invoice_id=invoice.id,
            source=f"invoice:{invoice.number}"[:120],
            actor=actor,
        )
        for d in application.draws
    ]
    repo.add_entries(uow.session, rows)
    return len(rows)


def return_credits(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    source: str,
    at: datetime,
    actor: str,
    amount: Decimal | None = None,
) -> list[core.Reversal]:
    """Give back what ``invoice`` drew: everything (``amount`` None: a void) or ``amount`` of credits
    (a credit note), to the grants it came from, the last drawn first. ``source`` names the
    correction (``void``, ``credit_note:<number>``): the same correction run twice gives back once."""
    assert invoice.id is not None
    tenant = uow.session.get(Tenant, invoice.tenant_id)
    assert tenant is not None
    b = book(uow.session, tenant, lock=True)
    prefix = f"return:{invoice.id}:{source}:"
    if any(e.key.startswith(prefix) for e in b.entry_rows):
        return []
    found = core.reversals(b.entries, invoice.id, amount)
    repo.add_entries(
        uow.session,
        [
            CreditLedgerEntry(
                key=f"{prefix}{r.grant_id}"[:120],
                tenant_id=invoice.tenant_id,
                grant_id=r.grant_id,
                kind=core.EntryKind.REVERSAL,
                amount_minor=to_minor(r.amount, invoice.currency),
                currency=invoice.currency,
                at=at,
                invoice_id=invoice.id,
                source=source[:120],
                actor=actor,
            )
            for r in found
        ],
    )
    return found
