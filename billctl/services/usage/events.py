"""What an event becomes: the tenant it names, its dedupe key, the time window it must fall in, the
report a run gives, and the bucket size check."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

from billctl.config import UsageSettings
from billctl.core import periods
from billctl.core.events import Window
from billctl.db.repositories.tenants import TenantInfo

__all__ = ["TenantInfo", "UsageReport", "check_alignment", "event_key", "event_window"]


def event_key(tenant_id: int, event_id: str) -> int:
    """The dedupe key of (tenant, event_id) stored in seen_event: a signed 64-bit BLAKE2b."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=tenant_id.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class UsageReport:
    read: int = 0
    counted: int = 0
    units: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    late: Counter = field(default_factory=Counter)  # "tenant period" -> events counted for a finalized period
    not_billable: int = 0  # gateway log lines whose status does not bill (skipped, not an error)
    rejected_unlisted: int = 0  # rejections beyond KEEP_REJECTED: counted, not kept (a file of bad lines)

    KEEP_REJECTED = 10_000

    def reject(self, where: str, why: str) -> None:
        if len(self.rejected) < self.KEEP_REJECTED:
            self.rejected.append((where, why))
        else:
            self.rejected_unlisted += 1

    @property
    def rejected_count(self) -> int:
        return len(self.rejected) + self.rejected_unlisted

    def merge(self, other: UsageReport) -> None:
        self.read += other.read
        self.not_billable += other.not_billable
        self.counted += other.counted
        self.units += other.units
        self.duplicates += other.duplicates
        for where, why in other.rejected:
            self.reject(where, why)
        self.rejected_unlisted += other.rejected_unlisted
        self.late.update(other.late)

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "counted": self.counted,
            "units": self.units,
            "duplicates": self.duplicates,
            "not_billable": self.not_billable,
            "rejected": self.rejected_count,
            "rejections": [{"where": w, "reason": r} for w, r in self.rejected[:1000]],
            "late": [
                {"tenant": k.split(" ")[0], "period": k.split(" ")[1], "events": n}
                for k, n in sorted(self.late.items())
            ],
        }


def event_window(usage: UsageSettings, now_ms: int | None = None) -> Window:
    """The timestamps events may carry now (usage.max_past_days .. usage.max_future_seconds)."""
    return Window(
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        max_past_days=usage.max_past_days,
        max_future_seconds=usage.max_future_seconds,
    )


def check_alignment(tenants: dict[str, TenantInfo], bucket_seconds: int) -> None:
    for tz in {info.timezone for info in tenants.values()}:
        try:
            periods.check_bucket_alignment(bucket_seconds, tz)
        except periods.PeriodError as exc:
            from billctl.errors import ConfigError

            raise ConfigError(
                f"usage.bucket_seconds = {bucket_seconds}: {exc}", hint="choose a smaller bucket size"
            ) from None
