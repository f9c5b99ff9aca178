"""Burn-down and alerts: per tenant with credits, the balance, the recent burn rate, the projected
run-out date, and whether it is below ``credits.alert_below`` (per currency) or projected to run out
before its current period ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billctl.core import credits as core
from billctl.core import periods
from billctl.core.money import per_currency
from billctl.db.repositories import credits as repo
from billctl.services.context import App
from billctl.services.credits.common import book, tenant


@dataclass(frozen=True)
class TenantBurn:
    tenant: str
    burn: core.BurnDown


@dataclass(frozen=True)
class AlertsReport:
    at: datetime
    window_days: int
    thresholds: dict[str, Decimal]
    tenants: list[TenantBurn]

    @property
    def alerts(self) -> list[TenantBurn]:
        return [t for t in self.tenants if t.burn.alert]


def credit_alerts(
    app: App,
    *,
    tenant_keys: list[str] | None = None,
    now: datetime | None = None,
    accrued: dict[str, Decimal] | None = None,
    rehearsed: Mapping[int, Sequence[core.Entry]] | None = None,
) -> AlertsReport:
    """The burn-down of every tenant with credits (or of ``tenant_keys``). ``accrued``: the open
    period's charges so far per tenant (from a preview), when the caller has them. ``rehearsed``:
    draws a dry run's finalize would have recorded, by tenant id (``run-monthly --dry-run``), counted
    as if written."""
    now = now or app.now()
    window = app.config.credits.burn_window_days
    limits = per_currency(app.config.credits.alert_below)
    found = []
    with app.uow(readonly=True) as uow:
        rows = [tenant(uow.session, k) for k in tenant_keys] if tenant_keys else repo.tenants_with_credits(uow.session)
        for row in rows:
            b = book(uow.session, row)
            assert row.id is not None
            entries = [*b.entries, *(rehearsed or {}).get(row.id, ())]
            start, end = periods.period_of(now, row.timezone).bounds(row.timezone)
            burn = core.burn_down(
                b.grants,
                entries,
                currency=row.currency,
                now=now,
                period_start=start,
                period_end=end,
                window_days=window,
                threshold=limits.get(row.currency),
                accrued=(accrued or {}).get(row.key),
            )
            found.append(TenantBurn(row.key, burn))
    return AlertsReport(at=now, window_days=window, thresholds=limits, tenants=found)
