"""`billctl usage anomalies` on stored usage, on SQLite and PostgreSQL: the spike is found (exit 10),
ordinary hours, weekends and Mondays are not (exit 0)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers import events_file

START = datetime(2026, 9, 20, tzinfo=UTC)
SPIKE = datetime(2026, 10, 24, 14, 0, tzinfo=UTC)  # a Saturday


def _level(at: datetime) -> int:
    """Busy working hours, quiet nights, weekends at a quarter."""
    base = 400 if 8 <= at.hour < 18 else 100
    return base // 4 if at.weekday() >= 5 else base + (at.day * 7 + at.hour * 13) % 40


def setup_usage(cli, tmp_path) -> None:
    cli("db", "upgrade")
    for tenant in ("steady", "spiky", "newbie"):
        cli("tenants", "create", tenant)
    events = []
    for hour in range(35 * 24):
        at = START + timedelta(hours=hour)
        for tenant in ("steady", "spiky"):
            units = _level(at) + (20_000 if tenant == "spiky" and at == SPIKE else 0)
            events.append(
                {
                    "tenant_id": tenant,
                    "endpoint": "/v1/ocr" if units > 10_000 else "/v1/search",
                    "ts": (at + timedelta(minutes=7)).isoformat(),
                    "units": units,
                    "event_id": f"{tenant}-{hour}",
                }
            )
        if at >= SPIKE - timedelta(days=2):  # a brand-new tenant: big, but nothing to compare with
            events.append({"tenant_id": "newbie", "ts": at.isoformat(), "units": 5_000, "event_id": f"n-{hour}"})
    cli("usage", "import", events_file(tmp_path, events))


def test_spike_is_found_with_exit_10(cli, tmp_path):
    setup_usage(cli, tmp_path)
    result = cli("usage", "anomalies", "--at", "2026-10-24T14:30Z", "-o", "json", expect=10)
    doc = result.json()
    assert doc["window"] == {"start": "2026-10-24T14:00:00+00:00", "seconds": 3600, "end": "2026-10-24T15:00:00+00:00"}
    assert doc["checked"] == 3
    assert doc["not_enough_history"] == ["newbie"]
    (found,) = doc["anomalies"]
    assert found["tenant"] == "spiky"
    assert found["units"] == 20_100 and found["events"] == 1
    assert found["baseline"] == "weekly"  # compared with earlier Saturdays at 14:00
    assert found["median"] == 100.0 and found["score"] > 5
    assert found["endpoints"] == [{"endpoint": "/v1/ocr", "units": 20_100}]
    assert "1 of 3 tenant(s)" in result.stderr
    table = cli("usage", "anomalies", "--at", "2026-10-24T14:59:59+00:00", expect=10)
    assert "spiky" in table.stdout and "20,100" in table.stdout and "/v1/ocr" in table.stdout
    assert "steady" not in table.stdout
    csv = cli("usage", "anomalies", "--at", "2026-10-24T14:00", "-o", "csv", expect=10).stdout.splitlines()
    assert csv[0].startswith("tenant,units,events") and csv[1].startswith("spiky,")
    # a bigger window sees the same spike
    day = cli("usage", "anomalies", "--window", "1d", "--at", "2026-10-24", "-o", "json", expect=10).json()
    assert [a["tenant"] for a in day["anomalies"]] == ["spiky"]


def test_ordinary_hours_weekends_and_mondays_are_not_flagged(cli, tmp_path):
    setup_usage(cli, tmp_path)
    for at in ("2026-10-23T14:00Z", "2026-10-24T10:00Z", "2026-10-25T14:00Z", "2026-10-19T09:00Z", "2026-10-22T03:00Z"):
        result = cli("usage", "anomalies", "--at", at, "-o", "json")
        assert result.json()["anomalies"] == [], at
    quiet = cli("usage", "anomalies", "--at", "2026-10-23T14:00Z")
    assert quiet.stdout == "" and "no anomalies" in quiet.stderr
    # thresholds are the operator's: a lower bar flags more
    loose = cli("usage", "anomalies", "--at", "2026-10-23T14:00Z", "--min-units", "1", "--threshold", "0.1", expect=10)
    assert "steady" in loose.stdout or "spiky" in loose.stdout


def test_bad_arguments(cli, tmp_path):
    cli("db", "upgrade")
    assert "divide a day" in cli("usage", "anomalies", "--window", "7h", expect=3).stderr
    assert "not a time" in cli("usage", "anomalies", "--at", "yesterday", expect=3).stderr
    wide = cli("--set", "usage.bucket_seconds=3600", "usage", "anomalies", "--window", "15m", expect=3)
    assert "usage bucket" in wide.stderr
    empty = cli("usage", "anomalies", "-o", "json")  # no usage at all: nothing to report, exit 0
    assert empty.json()["anomalies"] == [] and empty.json()["checked"] == 0
