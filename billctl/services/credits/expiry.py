"""Writing off expired credits at a period close (a ``run-monthly`` step).

For each tenant with credits, the remainders of the grants expired by the end of the period (in the
tenant's time zone; never later than now) become ``expiry`` entries, keyed
``expiry:<grant id>:<n>`` (the n-th write-off of that grant: a grant given back after its expiry is
written off again at the next close). A grant that expires exactly as the period ends still covers
that period's invoice: while the tenant has no live invoice for the period yet, it is kept (deferred)
rather than written off, so a close that finalizes late never loses credits it should have drawn.

A dry run of a whole close (``run-monthly --dry-run``) writes no invoice, so it passes what its
rehearsed finalize would have drawn (``rehearsed``: by tenant id, the draws, for every tenant it
would invoice): the plan then writes off what the real close would, after those draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billctl.core import credits as core
from billctl.core import periods
from billctl.core.money import to_minor
from billctl.db.models import CreditLedgerEntry
from billctl.db.repositories import credits as repo
from billctl.errors import BadInput
from billctl.services.context import App, audit
from billctl.services.credits.common import book, tenant


@dataclass(frozen=True)
class Expired:
    tenant: str
    currency: str
    grant_id: int
    amount: Decimal
    expired_at: datetime


@dataclass
class ExpiryReport:
    period: str
    dry_run: bool
    expired: list[Expired] = field(default_factory=list)
    deferred: list[Expired] = field(default_factory=list)  # waiting for the period's invoice


def expire_credits(
    app: App,
    period: str,
    *,
    tenant_keys: list[str] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    rehearsed: Mapping[int, Sequence[core.Entry]] | None = None,
) -> ExpiryReport:
    """Write off what expired by the end of ``period`` (YYYY-MM), per tenant, in one transaction.
    ``rehearsed`` (a dry run only): the draws a rehearsed finalize would have recorded, by tenant id
    (module docstring)."""
    rehearsed = rehearsed if dry_run and rehearsed else {}
    now = now or app.now()
    try:
        month = periods.Period.parse(period)
    except periods.PeriodError as exc:
        raise BadInput(f"period: {exc.message}", field="period") from None
    report = ExpiryReport(period=str(month), dry_run=dry_run)
    with app.uow(dry_run=dry_run) as uow:
        rows = [tenant(uow.session, k) for k in tenant_keys] if tenant_keys else repo.tenants_with_credits(uow.session)
        for row in rows:
            assert row.id is not None
            end = min(month.bounds(row.timezone)[1], now)
            b = book(uow.session, row, lock=True)
            grants, ledger = b.grants, [*b.entries, *rehearsed.get(row.id, ())]
            waiting = row.id not in rehearsed and repo.live_invoice(uow.session, row.id, str(month)) is None
            keep = [g.id for g in grants if waiting and g.covers(month.bounds(row.timezone)[1])]
            left = core.remainders(ledger)
            for g in grants:
                if g.id in keep and g.expired_by(end) and left.get(g.id, 0) > 0:
                    assert g.expires_at is not None
                    report.deferred.append(Expired(row.key, row.currency, g.id, left[g.id], g.expires_at))
            written: dict[int, int] = {}
            for e in b.entry_rows:
                if e.kind == core.EntryKind.EXPIRY:
                    written[e.grant_id] = written.get(e.grant_id, 0) + 1
            found = core.expiries(grants, ledger, end, keep=keep)
            by_id = b.by_id
            entries = []
            for x in found:
                expires_at = by_id[x.grant_id].expires_at
                assert expires_at is not None
                entries.append(
                    CreditLedgerEntry(
                        key=f"expiry:{x.grant_id}:{written.get(x.grant_id, 0) + 1}",
                        tenant_id=row.id,
                        grant_id=x.grant_id,
                        kind=core.EntryKind.EXPIRY,
                        amount_minor=-to_minor(x.amount, row.currency),
                        currency=row.currency,
                        at=expires_at,
                        source=f"close:{month}",
                        actor=app.actor,
                    )
                )
                report.expired.append(Expired(row.key, row.currency, x.grant_id, x.amount, expires_at))
            if entries:
                repo.add_entries(uow.session, entries)
                audit(
                    uow.session,
                    app,
                    "credits.expire",
                    "tenant",
                    row.key,
                    period=str(month),
                    grants={str(x.grant_id): str(x.amount) for x in found},
                )
    return report
