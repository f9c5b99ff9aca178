"""Find tenants whose usage in one window departs sharply from their own history.

Reads the usage buckets (one query over the same window on each of the previous days), hands the
series to the pure detector (``billctl.core.anomaly``) and adds, for what it flags, the events and
the endpoints behind the spike. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from billctl.core.anomaly import DAY, Finding, Settings, detect
from billctl.db.models import Tenant, UsageBucket
from billctl.db.tables import table_of
from billctl.errors import BadInput
from billctl.services.context import App


@dataclass
class Flagged:
    tenant: str
    finding: Finding
    events: int
    endpoints: list[tuple[str, int]]  # (endpoint, units) in the window, biggest first


@dataclass
class AnomalyReport:
    at: datetime  # start of the window judged (UTC)
    window: int  # seconds
    days: int
    settings: Settings
    checked: int = 0  # tenants with usage in the window
    too_new: list[str] = field(default_factory=list)  # tenants with less history than settings.min_history
    flagged: list[Flagged] = field(default_factory=list)


def window_start(at: datetime | None, window: int, now: datetime) -> datetime:
    """The window to judge: the one containing ``at``, or else the last complete one before now."""
    if at is not None:
        epoch = int(at.timestamp()) // window * window
    else:
        epoch = int(now.timestamp()) // window * window - window
    return datetime.fromtimestamp(epoch, UTC)


def find_anomalies(
    app: App,
    *,
    window: int,
    at: datetime | None = None,
    days: int = 28,
    settings: Settings = Settings(),
) -> AnomalyReport:
    bucket = app.config.usage.bucket_seconds
    if window % bucket:
        raise BadInput(
            f"window: {window}s is not a whole number of usage buckets ({bucket}s)",
            hint="use a multiple of usage.bucket_seconds",
            field="window",
        )
    if days < 1:
        raise BadInput("days: must be at least 1", field="days")
    start = window_start(at, window, app.now())
    at_epoch = int(start.timestamp())
    low = at_epoch - days * DAY
    report = AnomalyReport(at=start, window=window, days=days, settings=settings)
    table = table_of(UsageBucket)
    offset = table.c.bucket_start - low
    slot = (offset // DAY).label("slot")  # integer (floor) division on both SQLite and PostgreSQL
    in_windows = sa.and_(
        table.c.bucket_start >= low,
        table.c.bucket_start < at_epoch + window,
        offset % DAY < window,
    )
    with app.uow(readonly=True) as uow:
        conn = uow.connection
        current = {
            tenant_id
            for (tenant_id,) in conn.execute(
                sa.select(table.c.tenant_id)
                .where(table.c.bucket_start >= at_epoch, table.c.bucket_start < at_epoch + window)
                .group_by(table.c.tenant_id)
            )
        }
        report.checked = len(current)
        if not current:
            return report
        tenants = table_of(Tenant)
        keys: dict[int, str] = dict(
            conn.execute(sa.select(tenants.c.id, tenants.c.key).where(tenants.c.id.in_(current))).all()
        )
        series: dict[str, dict[int, float]] = {keys[t]: {} for t in current}
        rows = conn.execute(
            sa.select(table.c.tenant_id, slot, sa.func.sum(table.c.units))
            .where(in_windows, table.c.tenant_id.in_(current))
            .group_by(table.c.tenant_id, slot)
        )
        for tenant_id, index, units in rows:
            series[keys[tenant_id]][low + int(index) * DAY] = float(units)
        first = dict(
            conn.execute(
                sa.select(table.c.tenant_id, sa.func.min(table.c.bucket_start))
                .where(table.c.bucket_start >= low, table.c.bucket_start < at_epoch + window)
                .where(table.c.tenant_id.in_(current))
                .group_by(table.c.tenant_id)
            ).all()
        )
        history = {keys[t]: max(0, (at_epoch - int(first[t])) // DAY) for t in current}
        report.too_new = sorted(k for k, h in history.items() if h < settings.min_history)
        findings = detect(series, at_epoch, days=days, history_days=history, settings=settings)
        ids = {v: k for k, v in keys.items()}
        for finding in findings:
            tenant_id = ids[finding.key]
            per_endpoint = conn.execute(
                sa.select(table.c.endpoint, sa.func.sum(table.c.units), sa.func.sum(table.c.events))
                .where(
                    table.c.tenant_id == tenant_id,
                    table.c.bucket_start >= at_epoch,
                    table.c.bucket_start < at_epoch + window,
                )
                .group_by(table.c.endpoint)
            ).all()
            endpoints = sorted(((e, int(u)) for e, u, _ in per_endpoint), key=lambda x: (-x[1], x[0]))
            events = sum(int(n) for _, _, n in per_endpoint)
            report.flagged.append(Flagged(finding.key, finding, events, endpoints))
    return report
