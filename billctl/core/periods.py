"""Billing periods: calendar months in the tenant's time zone, half-open [start, end)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pendulum

from billctl.core.bounds import quote
from billctl.errors import PeriodError

_PERIOD_RE = re.compile(r"(\d{4})-(\d{2})")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.lru_cache(maxsize=1024)
def validate_timezone(name: str) -> str:
    if not isinstance(name, str) or not name or name not in _zones():
        raise PeriodError(f"unknown time zone {quote(name)}; use an IANA name such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown time zone {quote(name)}; use an IANA name such as 'Europe/Berlin'") from None
    return name


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def _utc(value: pendulum.DateTime) -> datetime:
    return datetime.fromtimestamp(value.int_timestamp, tz=UTC)


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
            raise PeriodError(f"{quote(text)} is not a billing month; write YYYY-MM, e.g. 2026-10")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        return _bounds(self.year, self.month, tz)

    def contains(self, instant: datetime, tz: str) -> bool:
        start, end = self.bounds(tz)
        return start <= instant < end

    def first_day(self) -> date:
        return date(self.year, self.month, 1)


@functools.lru_cache(maxsize=4096)
def _bounds(year: int, month: int, tz: str) -> tuple[datetime, datetime]:
    validate_timezone(tz)
    start = pendulum.datetime(year, month, 1, tz=tz)
    end = pendulum.datetime(year + month // 12, month % 12 + 1, 1, tz=tz)
    return _utc(start), _utc(end)


def open_period_reason(period: Period, tz: str, now: datetime) -> str | None:
    """Invariant 12, the one rule every finalizing path applies: ``period`` may be billed only once
    it has ended in ``tz`` (the tenant's time zone) at ``now``. Returns why not (None: it has ended)."""
    end = period.bounds(tz)[1]
    if end <= now:
        return None
    return f"period not over yet in {tz} (ends {end.astimezone(UTC):%Y-%m-%d %H:%M}Z)"


def period_of(instant: datetime, tz: str) -> Period:
    local = pendulum.instance(instant.astimezone(UTC)).in_timezone(validate_timezone(tz))
    return Period(local.year, local.month)


def next_period_start(instant: datetime, tz: str) -> datetime:
    return period_of(instant, tz).next().bounds(tz)[0]


def day_start(text: str, tz: str) -> datetime:
    """Midnight of a YYYY-MM-DD day in ``tz``, as a UTC datetime."""
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text):
        raise PeriodError(f"{quote(text)} is not a date; write YYYY-MM-DD, e.g. 2026-10-16")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{quote(text)} is not a valid date; write YYYY-MM-DD, e.g. 2026-10-16") from None
    return _utc(pendulum.datetime(day.year, day.month, day.day, tz=validate_timezone(tz)))


def bucket_start(epoch_seconds: int, bucket_seconds: int) -> int:
    return epoch_seconds - epoch_seconds % bucket_seconds


@functools.lru_cache(maxsize=1024)
def _offsets(tz: str) -> frozenset[int]:
    """Every UTC offset (seconds) a month boundary of ``tz`` has had or will have, 1970-2100."""
    zone = ZoneInfo(validate_timezone(tz))
    offsets = set()
    for year in range(1970, 2101):
        for month in range(1, 13):
            offset = datetime(year, month, 1, tzinfo=zone).utcoffset()
            offsets.add(int(offset.total_seconds()) if offset is not None else 0)
    return frozenset(offsets)


def check_bucket_alignment(bucket_seconds: int, tz: str) -> None:
    """Invariant 7: refuse a bucket size that would straddle a month boundary in ``tz``."""
    bad = sorted(o for o in _offsets(tz) if o % bucket_seconds)
    if bad:
        shown = ", ".join(_fmt_offset(o) for o in bad[:3])
        raise PeriodError(
            f"{bucket_seconds} s usage buckets would straddle month boundaries in {tz} "
            f"(UTC offset {shown}); use buckets of at most "
            f"{_largest_divisor(bad)} s, e.g. usage.bucket_seconds = 300"
        )


def _largest_divisor(offsets: list[int]) -> int:
    for size in (3600, 1800, 900, 300, 60):
        if all(o % size == 0 for o in offsets):
            return size
    return 1


def _fmt_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def segment_fraction(seg_start: datetime, seg_end: datetime, period_start: datetime, period_end: datetime) -> Decimal:
    """Exact share of the period's duration that [seg_start, seg_end) covers (28 significant digits)."""
    part = int((seg_end - seg_start) / timedelta(seconds=1))
    whole = int((period_end - period_start) / timedelta(seconds=1))
    if part == whole:
        return Decimal(1)
    with localcontext() as ctx:
        ctx.prec = 28
        return Decimal(part) / Decimal(whole)
