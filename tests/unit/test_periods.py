from datetime import UTC, datetime, timedelta

import pytest

from billctl.core.periods import (
    Period,
    PeriodError,
    check_bucket_alignment,
    day_start,
    next_period_start,
    period_of,
    segment_fraction,
    validate_timezone,
)

UTC = UTC


def test_parse_and_navigate():
    p = Period.parse("2026-10")
    assert str(p) == "2026-10" and str(p.next()) == "2026-11" and str(p.previous()) == "2026-09"
    assert str(Period.parse("2026-12").next()) == "2027-01"
    assert str(Period.parse("2026-01").previous()) == "2025-12"


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-1", "26-10", "October", "2026-10-01", ""])
def test_bad_periods_are_named(bad):
    with pytest.raises(PeriodError, match="YYYY-MM"):
        Period.parse(bad)


def test_seoul_bounds():
    start, end = Period.parse("2026-10").bounds("Asia/Seoul")
    assert start == datetime(2026, 9, 30, 15, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 15, tzinfo=UTC)


def test_new_york_across_dst():
    # DST ends 2026-11-01 02:00 local: October starts at -04:00, November at -04:00 and ends at -05:00
    start, end = Period.parse("2026-11").bounds("America/New_York")
    assert start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert end == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert end - start == timedelta(days=30, hours=1)  # the month is an hour longer
    march_start, march_end = Period.parse("2026-03").bounds("America/New_York")
    assert march_end - march_start == timedelta(days=31, hours=-1)  # spring forward: an hour shorter


def test_kolkata_bounds_and_membership():
    start, end = Period.parse("2026-10").bounds("Asia/Kolkata")
    assert start == datetime(2026, 9, 30, 18, 30, tzinfo=UTC)
    assert period_of(datetime(2026, 9, 30, 18, 29, tzinfo=UTC), "Asia/Kolkata") == Period(2026, 9)
    assert period_of(datetime(2026, 9, 30, 18, 30, tzinfo=UTC), "Asia/Kolkata") == Period(2026, 10)
    assert Period(2026, 10).contains(start, "Asia/Kolkata") and not Period(2026, 10).contains(end, "Asia/Kolkata")


def test_bucket_alignment():
    for tz in ("UTC", "America/New_York", "Asia/Seoul", "Europe/Berlin"):
        check_bucket_alignment(3600, tz)
    check_bucket_alignment(300, "Asia/Kolkata")
    check_bucket_alignment(900, "Asia/Kathmandu")
    with pytest.raises(PeriodError, match="Asia/Kolkata.*\\+05:30"):
        check_bucket_alignment(3600, "Asia/Kolkata")
    with pytest.raises(PeriodError, match="Asia/Kathmandu"):
        check_bucket_alignment(1800, "Asia/Kathmandu")


def test_timezones_and_dates():
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(PeriodError, match="Mars/Base"):
        validate_timezone("Mars/Base")
    assert day_start("2026-10-16", "Asia/Seoul") == datetime(2026, 10, 15, 15, tzinfo=UTC)
    with pytest.raises(PeriodError):
        day_start("2026-02-30", "UTC")
    assert next_period_start(datetime(2026, 11, 25, tzinfo=UTC), "UTC") == datetime(2026, 12, 1, tzinfo=UTC)


def test_segment_fraction_is_exact_share():
    start, end = Period.parse("2026-10").bounds("UTC")
    mid = datetime(2026, 10, 16, tzinfo=UTC)
    a, b = segment_fraction(start, mid, start, end), segment_fraction(mid, end, start, end)
    assert a + b == 1 or abs(a + b - 1) < 10**-27
    assert segment_fraction(start, end, start, end) == 1
