"""Preview: every active tenant (or one) priced for a period, nothing written; and the rule that only
finished months are billed (DESIGN.md invariant 12), which preview, finalize and recompute share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from billctl.core import periods
from billctl.core.periods import Period
from billctl.db.models import Tenant
from billctl.db.repositories import invoices as repo
from billctl.errors import BadInput, BillctlError
from billctl.services.context import App
from billctl.services.invoices.pricing import Priced, ledger_credits, load_context, price_period
from billctl.services.invoices.queries import billed_tenants
from billctl.services.usage import usage_totals


class OpenPeriod(BadInput):
    """The period is not over for any of the tenants asked for (invariant 12): nothing to finalize."""


OPEN_PERIOD_HINT = (
    "only finished months are billed: run it again once the month has ended, or pass --allow-open-period "
    "to bill a partial month on purpose (recorded in the audit log)"
)


def open_periods(period: Period, tenants: Sequence[Tenant], now: datetime, *, allow: bool = False) -> dict[int, str]:
    """Tenant id -> why its ``period`` is not over yet at ``now`` (``periods.open_period_reason``,
    the rule of invariant 12). Unless ``allow``, raises OpenPeriod when that is every tenant of a
    non-empty list."""
    refused = {
        t.id: why for t in tenants if t.id is not None and (why := periods.open_period_reason(period, t.timezone, now))
    }
    if not allow and tenants and len(refused) == len(tenants):
        who = f"tenant '{tenants[0].key}'" if len(tenants) == 1 else f"any of the {len(tenants)} tenants"
        first = min(tenants, key=lambda t: period.bounds(t.timezone)[1])
        earliest = "" if len(tenants) == 1 else ", the earliest"
        raise OpenPeriod(
            f"{period} is not over yet for {who} (it ends {period.bounds(first.timezone)[1]:%Y-%m-%d %H:%M}Z "
            f"in {first.timezone}{earliest})",
            hint=OPEN_PERIOD_HINT,
            field="period",
        )
    return refused


def require_period_over(app: App, period: Period, tenant_key: str | None = None) -> dict[int, str]:
    """``open_periods`` for the tenants a finalize of ``tenant_key`` (or of every active tenant)
    would bill, now: commands check it before asking anything or taking a lock."""
    with app.uow() as uow:
        return open_periods(period, billed_tenants(uow.session, tenant_key), app.now())


def iter_preview(app: App, period: Period, tenant_key: str | None = None) -> Iterator[Priced]:
    """Price every active tenant (or one) for ``period`` without writing anything.

    Usage is read with one streamed ``GROUP BY`` per distinct time zone, merged with the
    tenant list in id order, so memory does not grow with the number of tenants."""
    with app.uow(readonly=True) as uow:
        session = uow.session
        tenants = billed_tenants(session, tenant_key)
        ids = [t.id for t in tenants if t.id is not None] if tenant_key else None
        ctx = load_context(session, ids, app.config.billing.adjustment_lookback_months)
        live = repo.live_invoices(session, str(period), ids)
        previous = {
            i.tenant_id: i.total_minor for i in repo.live_invoices(session, str(period.previous()), ids).values()
        }
        conn = uow.connection
        credits = ledger_credits(uow, ids, lock=False)  # read, as finalize would draw; nothing written
        by_tz: dict[str, list[Tenant]] = defaultdict(list)
        for tenant in tenants:
            by_tz[tenant.timezone].append(tenant)
        for tz, group in by_tz.items():
            start, end = period.bounds(tz)
            scope = [t.id for t in group if t.id is not None] if (tenant_key or len(by_tz) > 1) else None
            rows = repo.stream_usage(conn, start, end, scope)
            for tenant, usage in _merge(group, rows):
                assert tenant.id is not None
                if tenant.id in live:
                    yield Priced(
                        tenant=tenant,
                        period=period,
                        skipped="already finalized",
                        existing=live[tenant.id],
                        previous_total_minor=previous.get(tenant.id),
                    )
                    continue

                def usage_of(
                    s: datetime,
                    e: datetime,
                    tid: int = tenant.id,
                    usage: dict[str, int] = usage,
                    whole: tuple[datetime, datetime] = (start, end),
                ) -> dict[str, int]:
                    return usage if (s, e) == whole else usage_totals(conn, tid, s, e)

                try:
                    priced = price_period(conn, ctx, tenant, period, usage_of, credits=credits)
                except Exception as exc:  # one tenant's data cannot be priced: show it, go on
                    if stops_the_run(app, exc):
                        raise
                    priced = failed(tenant, period, exc)
                priced.previous_total_minor = previous.get(tenant.id)
                yield priced


def _merge(tenants: list[Tenant], rows: Any) -> Iterator[tuple[Tenant, dict[str, int]]]:
    """Join tenants (ascending id) with usage rows (ascending tenant_id), one tenant at a time."""
    pending: tuple[int, str, int] | None = None
    iterator = iter(rows)
    for tenant in tenants:
        assert tenant.id is not None
        usage: dict[str, int] = {}
        while True:
            if pending is None:
                row = next(iterator, None)
                if row is None:
                    break
                pending = (row[0], row[1], int(row[2]))
            if pending[0] < tenant.id:
                pending = None  # a tenant outside this group (other zone or status)
                continue
            if pending[0] > tenant.id:
                break
            usage[pending[1]] = pending[2]
            pending = None
        yield tenant, usage


def stops_the_run(app: App, exc: Exception) -> bool:
    """A failure no tenant can get past (the database is down or read-only, the run lost its lock),
    as opposed to one tenant's data that cannot be billed."""
    from billctl.db.engine import database_error
    from billctl.errors import DependencyDown, LockHeld

    if isinstance(exc, DependencyDown | LockHeld):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and database_error(exc, app.config.database.url) is not None


def failed(tenant: Tenant, period: Period, exc: Exception) -> Priced:
    """A tenant whose data could not be billed, with the reason in one line."""
    if isinstance(exc, BillctlError | ValueError):  # TenantDataError, a stored plan that no longer validates
        reason = str(exc)
    elif isinstance(exc, sa.exc.DBAPIError):  # e.g. PostgreSQL: bigint out of range
        reason = f"the database refused it: {(str(exc.orig) if exc.orig else str(exc)).strip().splitlines()[0]}"
    else:  # e.g. SQLite: OverflowError, an integer too large for the column
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    return Priced(tenant=tenant, period=period, skipped=f"failed: {reason}", failed=True)
