"""`usage aggregate --follow` on a quiet stream: usage reaches the database within about a flush
interval (``stream.flush_ms``), not when a full batch has built up, and a follower never claims
entries that are in flight in its own process. Against the real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from billctl.config import load_config
from billctl.services import aggregate as agg
from billctl.services.context import App
from tests.conftest import Cli
from tests.helpers import units_by_tenant

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_group(r: redis.Redis, stream: str, timeout: float = 30) -> None:
    """Until the aggregator has created its consumer group (it is past its start-up: imports,
    database check) and a moment more, for its reader thread to start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.exists(stream) and r.xinfo_groups(stream):
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError("the aggregator did not start")


def test_a_trickle_reaches_the_database_within_3_s_with_default_settings(scli: Cli, stream: str, redis_url: str):
    scli("tenants", "create", "acme", "--name", "Acme")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")},
        "BILLCTL_DATABASE_URL": scli.db_url,
        "BILLCTL_REDIS_URL": redis_url,
        "BILLCTL_STREAM_NAME": stream,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "billctl", "-q", "usage", "aggregate", "--follow", "-o", "json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    r = redis.Redis.from_url(redis_url)
    engine = sa.create_engine(scli.db_url)
    sent: list[float] = []
    arrived: dict[int, float] = {}  # event number -> when the database first showed it
    try:
        _wait_for_group(r, stream)

        def produce() -> None:  # 10 events a second for 4 seconds, one unit each
            for i in range(40):
                sent.append(time.monotonic())
                r.xadd(stream, {"tenant_id": "acme", "endpoint": "/v1/x", "units": 1, "event_id": f"t-{i}"})
                time.sleep(0.1)

        producer = threading.Thread(target=produce)
        producer.start()
        deadline = time.monotonic() + 20
        while len(arrived) < 40 and time.monotonic() < deadline:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT COALESCE(SUM(units), 0) FROM usage_bucket")).scalar()
            now = time.monotonic()
            for i in range(int(stored)):  # one consumer commits in stream order: the first `stored` events
                arrived.setdefault(i, now)
            time.sleep(0.05)
        producer.join()
    finally:
        engine.dispose()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        r.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    latency = [arrived[i] - sent[i] for i in range(40) if i in arrived]
    assert len(latency) == 40, f"only {len(latency)} of 40 events reached the database"
    assert max(latency) < 3.0, f"slowest event took {max(latency):.2f} s"
    report = json.loads(out)
    assert (report["counted"], report["claimed"], report["duplicates"]) == (40, 0, 0)


def test_a_follower_never_claims_its_own_entries_in_flight(scli: Cli, stream: str, redis_url: str, monkeypatch):
    """The writer is slowed down (a database lock wait, say) so that entries wait in this process
    longer than stream.claim_idle_ms: they are in flight, not abandoned, and must not be claimed
    (and then counted as duplicates) by the follower's own claim loop."""
    scli("tenants", "create", "acme", "--name", "Acme")
    settings = {"database.url": scli.db_url, "stream.flush_ms": "50", "stream.claim_idle_ms": "500"}
    app = App(config=load_config(None, {**settings, "stream.block_ms": "100"}, env=scli.env))
    write = agg.Writer.write

    def slow_write(self, chunks):  # type: ignore[no-untyped-def]
        time.sleep(1.2)
        write(self, chunks)

    monkeypatch.setattr(agg.Writer, "write", slow_write)
    r = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    done: list = []
    thread = threading.Thread(target=lambda: done.append(agg.aggregate(app, follow=True, stop=stop)))
    thread.start()
    try:
        for i in range(30):
            r.xadd(stream, {"tenant_id": "acme", "units": 1, "event_id": f"e{i}"})
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while units_by_tenant(scli.db_url).get("acme", 0) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
        app.dispose()
    report = done[0]
    assert units_by_tenant(scli.db_url) == {"acme": 30}
    assert (report.counted, report.claimed, report.duplicates) == (30, 0, 0)
    assert r.xinfo_groups(stream)[0]["pending"] == 0
    r.close()
