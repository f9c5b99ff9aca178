"""usage aggregate against the real Redis and the database (SQLite and PostgreSQL): exactly once,
dead letters, exact trimming, claims, shards, dry run, late events, views."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import redis
import sqlalchemy as sa

from billctl.config import load_config
from billctl.services import aggregate as agg
from billctl.services.aggregate import writer as agg_writer
from billctl.services.context import App
from tests.conftest import Cli
from tests.helpers import units_by_tenant

QUICK_CLAIM = {"stream.flush_ms": 1, "stream.claim_idle_ms": 10}  # claims after 10 ms (the minimum: 10 x flush)


def _app(cli: Cli, **settings: object) -> App:
    overrides = {"database.url": cli.db_url, **{k: str(v) for k, v in settings.items()}}
    return App(config=load_config(None, overrides, env=cli.env))


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def tenants(scli: Cli) -> Cli:
    for key in ("acme", "globex"):
        scli("tenants", "create", key, "--name", key.title())
    return scli


def test_counts_each_event_once_dead_letters_bad_ones_and_trims_exactly(tenants: Cli, r, stream: str) -> None:
    now = int(time.time() * 1000)
    r.xadd(stream, {"tenant_id": "acme", "endpoint": "/v1/search", "units": 2, "event_id": "a1", "ts": now})
    r.xadd(stream, {"tenant_id": "acme", "endpoint": "/v1/search", "units": 2, "event_id": "a1", "ts": now})  # retry
    r.xadd(stream, {"tenant_id": "globex", "endpoint": "/v1/ocr"})  # defaults: 1 unit, ts and id from the entry
    r.xadd(stream, {"tenant_id": "nobody", "units": 1})
    r.xadd(stream, {"tenant_id": "acme", "units": "lots"})
    r.xadd(stream, {"endpoint": "/v1/x"})
    r.xadd(stream, {"tenant_id": "acme", "ts": now + 3_600_000})
    r.xadd(stream, {"tenant_id": "acme", "endpoint": "/" + "x" * 300})

    result = tenants("usage", "aggregate", "--drain", "-o", "json")
    report = result.json()
    assert report["read"] == 8
    assert report["counted"] == 2 and report["units"] == 3 and report["duplicates"] == 1
    assert report["dead_lettered"] == 5 and report["acked"] == 8
    assert units_by_tenant(tenants.db_url) == {"acme": 2, "globex": 1}
    assert r.xlen(stream) == 0  # every entry committed and acknowledged: all trimmed
    assert r.xinfo_groups(stream)[0]["pending"] == 0

    dead = r.xrange(f"{stream}:dead")
    reasons = sorted(fields["_reason"] for _, fields in dead)
    assert any("unknown tenant 'nobody'" in x for x in reasons)
    assert any("units 'lots'" in x for x in reasons)
    assert any("tenant_id is missing" in x for x in reasons)
    assert any("in the future" in x for x in reasons)
    assert any("longer than 200" in x for x in reasons)
    assert all(fields["_source"] == stream for _, fields in dead)

    again = tenants("usage", "aggregate", "-o", "json").json()
    assert again["read"] == 0 and units_by_tenant(tenants.db_url) == {"acme": 2, "globex": 1}

    engine = sa.create_engine(tenants.db_url)
    with engine.connect() as conn:
        offset = conn.execute(sa.text("SELECT stream, events FROM stream_offset")).one()
    engine.dispose()
    assert offset == (stream, 8)


def test_dry_run_changes_nothing_anywhere(tenants: Cli, r, stream: str) -> None:
    for i in range(50):
        r.xadd(stream, {"tenant_id": "acme" if i % 2 else "globex", "event_id": f"e{i}"})
    r.xadd(stream, {"tenant_id": "nobody"})
    before = (r.xlen(stream), r.exists(f"{stream}:dead"), r.keys(f"{stream}*"))
    report = tenants("usage", "aggregate", "--dry-run", "-o", "json").json()
    assert report["read"] == 51 and report["counted"] == 50 and report["dead_lettered"] == 1
    assert (r.xlen(stream), r.exists(f"{stream}:dead"), r.keys(f"{stream}*")) == before
    assert r.xinfo_groups(stream) == []  # not even the consumer group was created
    assert units_by_tenant(tenants.db_url) == {}
    # and the real run does what the dry run said
    real = tenants("usage", "aggregate", "-o", "json").json()
    assert (real["counted"], real["dead_lettered"]) == (50, 1)


def test_pending_entries_of_a_dead_consumer_are_never_trimmed_and_are_claimed(tenants: Cli, r, stream: str) -> None:
    for i in range(10):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    r.xgroup_create(stream, "billctl", id="0")
    # a consumer reads 4 entries and dies before committing them
    r.xreadgroup("billctl", "dead-pod", {stream: ">"}, count=4)
    tenants.env["BILLCTL_STREAM_CLAIM_IDLE_MS"] = "3600000"  # not idle long enough yet
    first = tenants("usage", "aggregate", "-o", "json").json()
    assert first["counted"] == 6 and first["claimed"] == 0
    assert r.xlen(stream) == 10  # the 4 pending ones (the oldest) hold the trim back
    tenants.env.update({"BILLCTL_STREAM_CLAIM_IDLE_MS": "10", "BILLCTL_STREAM_FLUSH_MS": "1"})
    time.sleep(0.05)
    second = tenants("usage", "aggregate", "-o", "json").json()
    assert second["claimed"] == 4 and second["counted"] == 4
    assert units_by_tenant(tenants.db_url) == {"acme": 10}
    assert r.xlen(stream) == 0
    consumers = {c["name"] for c in r.xinfo_consumers(stream, "billctl")}
    assert "dead-pod" in consumers  # idle for less than a day: kept for inspection


def _run_killed_before_the_ack(app: App, monkeypatch) -> None:
    """One run that dies after its commit (and dead letters), before acknowledging the batch."""

    def crash(*args, **kwargs):
        raise ConnectionError("killed between commit and XACK")

    monkeypatch.setattr(agg.StreamClient, "ack", crash)
    with pytest.raises(ConnectionError):
        agg.aggregate(app)
    monkeypatch.undo()


def test_crash_after_commit_before_ack_counts_nothing_twice(tenants: Cli, r, stream: str, monkeypatch) -> None:
    for i in range(100):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}", "units": 3})
    app = _app(tenants, **QUICK_CLAIM)
    _run_killed_before_the_ack(app, monkeypatch)
    assert units_by_tenant(tenants.db_url) == {"acme": 300}  # committed
    assert r.xlen(stream) == 100 and r.xinfo_groups(stream)[0]["pending"] == 100  # not acknowledged, not trimmed
    time.sleep(0.05)
    report = agg.aggregate(app)
    app.dispose()
    assert report.claimed == 100 and report.duplicates == 100 and report.counted == 0
    assert units_by_tenant(tenants.db_url) == {"acme": 300}
    assert r.xlen(stream) == 0


def test_a_bad_entry_is_dead_lettered_once_across_a_crash_before_the_ack(
    tenants: Cli, r, stream: str, monkeypatch
) -> None:
    r.xadd(stream, {"tenant_id": "acme", "event_id": "good"})
    bad = [r.xadd(stream, {"tenant_id": "ghost"}), r.xadd(stream, {"tenant_id": "acme", "units": "lots"})]
    app = _app(tenants, **QUICK_CLAIM)
    _run_killed_before_the_ack(app, monkeypatch)
    assert r.xlen(f"{stream}:dead") == 2
    time.sleep(0.05)
    again = agg.aggregate(app)  # the good entry is read again (still pending); the bad ones are not
    app.dispose()
    assert (again.read, again.duplicates, again.dead_lettered, len(again.rejected)) == (1, 1, 0, 0)
    assert sorted(f["_id"] for _, f in r.xrange(f"{stream}:dead")) == sorted(bad)  # one per bad entry
    listing = tenants("usage", "dead-letters", "list", "-o", "json").json()
    assert listing["total"] == 2
    assert units_by_tenant(tenants.db_url) == {"acme": 1}
    assert r.xlen(stream) == 0


def test_two_consumers_holding_one_bad_entry_write_one_dead_letter(tenants: Cli, r, stream: str) -> None:
    """A claim hands an entry to a second consumer while the first still holds it in memory: both
    go on to dead-letter it; only the first acknowledgement writes."""
    from billctl.stream.redis_stream import StreamClient

    entry = r.xadd(stream, {"tenant_id": "ghost"})
    r.xgroup_create(stream, "billctl", id="0")
    r.xreadgroup("billctl", "pod-a", {stream: ">"})
    r.xclaim(stream, "billctl", "pod-b", 0, [entry])
    client = StreamClient(tenants.env["BILLCTL_REDIS_URL"])
    letter = {b"tenant_id": b"ghost", b"_source": stream.encode(), b"_id": entry.encode(), b"_reason": b"x"}
    first = client.dead_letter(stream, "billctl", f"{stream}:dead", [(entry.encode(), letter)])
    second = client.dead_letter(stream, "billctl", f"{stream}:dead", [(entry.encode(), letter)])
    client.close()
    assert (first, second) == ([True], [False])
    assert r.xlen(f"{stream}:dead") == 1
    assert r.xinfo_groups(stream)[0]["pending"] == 0


def test_a_restart_under_the_same_consumer_name_takes_its_entries_back_at_once(tenants: Cli, r, stream: str) -> None:
    for i in range(5):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    r.xgroup_create(stream, "billctl", id="0")
    r.xreadgroup("billctl", "pod-0", {stream: ">"}, count=3)  # pod-0 dies holding 3 entries
    tenants.env["BILLCTL_STREAM_CONSUMER"] = "pod-0"  # restarted with the same name (a StatefulSet)
    report = tenants("usage", "aggregate", "-o", "json").json()  # claim_idle_ms: 60 s, not waited for
    assert (report["counted"], report["claimed"]) == (5, 3)
    assert r.xinfo_groups(stream)[0]["pending"] == 0 and r.xlen(stream) == 0


def test_claim_interval_must_be_well_above_the_flush_interval(tenants: Cli, r, stream: str) -> None:
    tenants.env.update({"BILLCTL_STREAM_FLUSH_MS": "1000", "BILLCTL_STREAM_CLAIM_IDLE_MS": "5000"})
    result = tenants("usage", "aggregate", expect=4)
    assert "stream.claim_idle_ms = 5000" in result.stderr and "at least 10000" in result.stderr


def test_crash_before_commit_loses_nothing(tenants: Cli, r, stream: str, monkeypatch) -> None:
    for i in range(100):
        r.xadd(stream, {"tenant_id": "globex", "event_id": f"e{i}"})
    app = _app(tenants, **QUICK_CLAIM)

    def crash(*args, **kwargs):
        raise RuntimeError("killed inside the transaction")

    monkeypatch.setattr(agg_writer, "record_offsets", crash)
    with pytest.raises(RuntimeError):
        agg.aggregate(app)
    monkeypatch.undo()
    assert units_by_tenant(tenants.db_url) == {}
    time.sleep(0.05)
    assert agg.aggregate(app).counted == 100
    app.dispose()
    assert units_by_tenant(tenants.db_url) == {"globex": 100}


def test_retention_keeps_counted_entries_for_a_while(tenants: Cli, r, stream: str) -> None:
    for i in range(5):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    tenants.env["BILLCTL_STREAM_RETENTION_SECONDS"] = "3600"
    assert tenants("usage", "aggregate", "-o", "json").json()["counted"] == 5
    assert r.xlen(stream) == 5
    tenants.env["BILLCTL_STREAM_RETENTION_SECONDS"] = "0"
    tenants("usage", "aggregate", "-o", "json")
    assert r.xlen(stream) == 5  # nothing new was read: no batch, no trim yet
    r.xadd(stream, {"tenant_id": "acme", "event_id": "e5"})
    tenants("usage", "aggregate", "-o", "json")
    assert r.xlen(stream) == 0


def test_trim_respects_other_consumer_groups(tenants: Cli, r, stream: str) -> None:
    for i in range(6):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    r.xgroup_create(stream, "analytics", id="0")
    r.xreadgroup("analytics", "a1", {stream: ">"}, count=2)
    r.xack(stream, "analytics", *[eid for eid, _ in r.xrange(stream, count=2)])
    tenants("usage", "aggregate")
    assert r.xlen(stream) == 4  # analytics still needs entries 3..6


def test_shards_are_read_and_entry_ids_qualified_per_shard(tenants: Cli, r, stream: str) -> None:
    tenants.env["BILLCTL_STREAM_SHARDS"] = "3"
    recent = int(time.time() * 1000) - 60_000  # the entries' time is the events' ts: inside the window
    for shard in range(3):
        for i in range(5):
            # the same explicit entry ids on every shard: different events
            r.xadd(f"{stream}:{shard}", {"tenant_id": "acme"}, id=f"{recent}-{i + 1}")
    report = tenants("usage", "aggregate", "-o", "json").json()
    assert report["counted"] == 15 and report["duplicates"] == 0
    assert all(r.xlen(f"{stream}:{shard}") == 0 for shard in range(3))
    lag = tenants("usage", "lag", "-o", "json").json()
    assert [s["stream"] for s in lag] == [f"{stream}:0", f"{stream}:1", f"{stream}:2", f"{stream}:dead"]
    assert all(g["pending"] == 0 and g["lag"] == 0 for s in lag[:3] for g in s["groups"])


def test_concurrent_aggregators_give_the_same_totals(tenants: Cli, r, stream: str) -> None:
    expected = {"acme": 0, "globex": 0}
    pipe = r.pipeline()
    for i in range(6000):
        tenant = "acme" if i % 3 else "globex"
        pipe.xadd(stream, {"tenant_id": tenant, "event_id": f"e{i % 5000}", "units": 1 + i % 4})
        if i < 5000:
            expected[tenant] += 1 + i % 4
    pipe.execute()
    # e0..e999 are repeated with another tenant for some ids: count per (tenant, id)
    seen = set()
    expected = {"acme": 0, "globex": 0}
    for i in range(6000):
        tenant = "acme" if i % 3 else "globex"
        key = (tenant, f"e{i % 5000}")
        if key not in seen:
            seen.add(key)
            expected[tenant] += 1 + i % 4
    apps = [
        _app(tenants, **{"stream.consumer": f"c{n}", "stream.read_count": 100, "stream.batch_events": 500})
        for n in range(3)
    ]
    errors: list[BaseException] = []

    def run(app: App) -> None:
        try:
            agg.aggregate(app)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for app in apps:
        app.dispose()
    assert not errors, errors
    assert units_by_tenant(tenants.db_url) == expected
    assert r.xlen(stream) == 0


def test_late_events_are_reported_and_billed_on_the_next_invoice(tenants: Cli, r, stream: str, tmp_path) -> None:
    from tests.helpers import BASIC, write_plan

    tenants("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    tenants("tenants", "assign-plan", "acme", "basic", "--effective", "2026-10-01")
    oct_ts = int(datetime(2026, 10, 3, tzinfo=UTC).timestamp() * 1000)
    r.xadd(stream, {"tenant_id": "acme", "ts": oct_ts, "units": 20000, "event_id": "before"})
    tenants("usage", "aggregate")
    tenants("invoices", "finalize", "--period", "2026-10", "--tenant", "acme", "--yes")
    r.xadd(stream, {"tenant_id": "acme", "ts": oct_ts, "units": 5000, "event_id": "late"})
    result = tenants("usage", "aggregate", "-o", "json")
    assert result.json()["late"] == [{"tenant": "acme", "period": "2026-10", "events": 1}]
    text = tenants("usage", "aggregate", "--dry-run")  # nothing new: no late warning
    assert "late event" not in text.stderr
    preview = tenants("invoices", "preview", "--period", "2026-11", "--tenant", "acme", "-o", "json").json()
    lines = preview["invoices"][0]["lines"]
    adjustment = [line for line in lines if line["kind"] == "adjustment"]
    assert "2026-10" in adjustment[0]["description"]
    assert adjustment and adjustment[0]["amount"]["minor"] == 500  # 5,000 more units at 0.001


def test_dead_letters_list_and_replay_after_the_fix(tenants: Cli, r, stream: str) -> None:
    r.xadd(stream, {"tenant_id": "initech", "units": 7})
    r.xadd(stream, {"tenant_id": "acme", "units": "x"})
    tenants("usage", "aggregate")
    listing = tenants("usage", "dead-letters", "list", "-o", "json").json()
    assert listing["total"] == 2
    replayable = {d["fields"]["tenant_id"]: d["replayable"] for d in listing["dead_letters"]}
    assert replayable == {"initech": False, "acme": False}

    tenants("tenants", "create", "initech", "--name", "Initech")
    dry = tenants("usage", "dead-letters", "replay", "--dry-run", "-o", "json").json()
    assert len(dry["replayed"]) == 1 and len(dry["kept"]) == 1
    assert r.xlen(f"{stream}:dead") == 2  # dry run: nothing moved
    tenants("usage", "dead-letters", "replay", "--yes")
    assert r.xlen(f"{stream}:dead") == 1
    tenants("usage", "aggregate")
    assert units_by_tenant(tenants.db_url) == {"initech": 7}
    # replaying the same entry again (a crash between append and delete) still counts once
    source_id = [d for d in listing["dead_letters"] if d["fields"]["tenant_id"] == "initech"][0]["source_id"]
    r.xadd(stream, {"tenant_id": "initech", "units": 7, "event_id": source_id})
    tenants("usage", "aggregate")
    assert units_by_tenant(tenants.db_url) == {"initech": 7}
    # without a terminal, replay asks for --yes
    entry_id = f"{int(time.time() * 1000)}-1"  # its time is the event's ts: inside the window, replayable
    r.xadd(f"{stream}:dead", {"tenant_id": "acme", "_source": stream, "_id": entry_id, "_reason": "x"})
    refused = tenants("usage", "dead-letters", "replay", expect=3)
    assert "--yes" in refused.stderr


def test_usage_show_and_top(tenants: Cli, r, stream: str) -> None:
    base = int(datetime(2026, 10, 3, 2, 40, tzinfo=UTC).timestamp() * 1000)
    for i in range(30):
        r.xadd(
            stream,
            {
                "tenant_id": "acme",
                "endpoint": "/v1/ocr" if i % 3 == 0 else "/v1/search",
                "ts": base + i * 3_600_000,
                "units": 2,
            },
        )
    r.xadd(stream, {"tenant_id": "globex", "ts": base, "units": 5})
    tenants("usage", "aggregate")
    shown = tenants("usage", "show", "--tenant", "acme", "--period", "2026-10", "-o", "json").json()
    assert shown["units"] == 60 and shown["events"] == 30
    assert {e["endpoint"]: e["units"] for e in shown["endpoints"]} == {"/v1/search": 40, "/v1/ocr": 20}
    days = {d["date"]: d["units"] for d in shown["days"]}
    assert len(days) == 31 and sum(days.values()) == 60 and days["2026-10-03"] == 44  # 02:40 .. 23:40
    table = tenants("usage", "show", "--tenant", "acme", "--period", "2026-10").stdout
    assert "/v1/search" in table and "█" in table and "2026-10-31" in table
    top = tenants("usage", "top", "--period", "2026-10", "-o", "json").json()
    assert [(t["tenant"], t["units"]) for t in top] == [("acme", 60), ("globex", 5)]
    tenants("usage", "show", "--tenant", "nobody", "--period", "2026-10", expect=3)


def test_redis_down_is_a_dependency_error(cli: Cli) -> None:
    cli.env.update({"BILLCTL_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    result = cli("usage", "aggregate", expect=5)
    assert "Redis at redis://:***@127.0.0.1:1/0 is unreachable" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    cli("usage", "aggregate", "--drain", "--follow", expect=3)


def test_follow_stops_cleanly_on_request(tenants: Cli, r, stream: str) -> None:
    app = _app(tenants, **{"stream.block_ms": 100})
    stop = threading.Event()
    done: list = []
    thread = threading.Thread(target=lambda: done.append(agg.aggregate(app, follow=True, stop=stop)))
    thread.start()
    for i in range(20):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    deadline = time.monotonic() + 10
    while units_by_tenant(tenants.db_url).get("acme", 0) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    app.dispose()
    assert not thread.is_alive() and done[0].counted == 20
    assert r.xinfo_groups(stream)[0]["pending"] == 0
    assert r.xinfo_groups(stream)[0]["consumers"] == 0  # its own consumer entry removed on exit


def test_max_events_stops_after_that_many_entries(tenants: Cli, r, stream: str) -> None:
    for i in range(10):
        r.xadd(stream, {"tenant_id": "acme", "event_id": f"e{i}"})
    tenants.env["BILLCTL_STREAM_READ_COUNT"] = "2"
    first = tenants("usage", "aggregate", "--max-events", "3", "-o", "json").json()
    assert first["read"] == 3 and first["acked"] == 3
    assert r.xinfo_groups(stream)[0]["pending"] == 0  # nothing read beyond the limit is left pending
    assert tenants("usage", "aggregate", "-o", "json").json()["read"] == 7
