import pytest

from billctl.core.events import EventError, Window, parse_event

NOW = 1_790_812_800_000  # 2026-10-01T00:00:00Z
WINDOW = Window(NOW, max_past_days=400, max_future_seconds=300)


def test_defaults_from_stream_entry():
    event = parse_event({"tenant_id": b"acme"}, default_ts_ms=1_780_000_000_000, default_event_id="1-0", window=WINDOW)
    assert (event.tenant, event.endpoint, event.ts_ms, event.units, event.event_id) == (
        "acme",
        "*",
        1_780_000_000_000,
        1,
        "1-0",
    )


def test_iso_and_ms_timestamps_agree():
    a = parse_event({"tenant_id": "t", "ts": "2026-10-01T00:00:00Z", "event_id": "x"}, window=WINDOW)
    b = parse_event({"tenant_id": "t", "ts": "1790812800000", "event_id": "x"}, window=WINDOW)
    c = parse_event({"tenant_id": "t", "ts": "2026-10-01T09:00:00+09:00", "event_id": "x"}, window=WINDOW)
    assert a.ts_ms == b.ts_ms == c.ts_ms


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({}, "tenant_id is missing"),
        ({"tenant_id": "t", "units": "0"}, "units"),
        ({"tenant_id": "t", "units": "1.5"}, "units"),
        ({"tenant_id": "t", "units": True}, "units"),
        ({"tenant_id": "t", "ts": "yesterday"}, "ts"),
        ({"tenant_id": "x" * 500}, "longer than"),
        ({"tenant_id": "t", "ts": 4_000_000_000_000}, "in the future"),
    ],
)
def test_rejections(fields, reason):
    with pytest.raises(EventError, match=reason):
        parse_event(fields, default_ts_ms=NOW, default_event_id="1-0", window=WINDOW)
