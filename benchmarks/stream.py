"""Issue 3 benchmark: 1M events from 1,000 tenants x 20 endpoints, in time order, from a Redis
Stream into PostgreSQL. Measured in the same run, on the same stream:

- R: the raw rate at which redis-py (hiredis, RESP2) reads and parses the stream with XREADGROUP
  COUNT 1000 (no database, no acknowledgement): the ceiling for any consumer in Python;
- naive: the tutorial's approach (XRANGE everything, count per tenant in Python, one row per
  tenant, XTRIM MAXLEN 0): loses events that arrive meanwhile and counts everything again after
  a crash; shown for scale only;
- billctl: `billctl usage aggregate --drain` in a subprocess, exactly once with event_id dedupe.

Prints billctl / R (target >= 0.4) and the aggregator's peak memory (RSS) for a quarter of the
stream and for the rest: it must depend on the batch size, not the stream length (< 300 MB).

    python -m benchmarks stream [--events 1000000] [--tenants 1000] [--endpoints 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
import sqlalchemy as sa

from benchmarks.common import report, scratch_database, seed_tenants, stage

REDIS_URL = os.environ.get("BILLCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def produce(r: redis.Redis, stream: str, events: int, tenants: int, endpoints: int) -> None:
    r.delete(stream, f"{stream}:dead")
    start_ms = int(time.time() * 1000) - events  # one event per millisecond, ending now: time order
    pipe = r.pipeline(transaction=False)
    for i in range(events):
        pipe.xadd(
            stream,
            {
                "tenant_id": f"t{i % tenants}",
                "endpoint": f"/v1/ep{(i // tenants) % endpoints}",
                "ts": start_ms + i,
                "units": 1 + i % 3,
                "event_id": f"req-{i:09d}",
            },
            id=f"{start_ms + i}-0",
        )
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def raw_rate(stream: str, count: int = 1000) -> tuple[float, int]:
    """Entries per second for XREADGROUP + redis-py's own parsing (dicts per entry)."""
    r = redis.Redis.from_url(REDIS_URL, protocol=2)
    r.xgroup_create(stream, "bench-raw", id="0")
    n = 0
    start = time.perf_counter()
    while True:
        reply = r.xreadgroup("bench-raw", "c", {stream: ">"}, count=count)
        if not reply:
            break
        n += len(reply[0][1])
    elapsed = time.perf_counter() - start
    r.xgroup_destroy(stream, "bench-raw")
    r.close()
    return n / elapsed, n


def naive(stream: str, url: str) -> tuple[float, int]:
    """The tutorial: XRANGE all, count per tenant, insert a row per tenant. (Its XTRIM MAXLEN 0 is
    left out here: it would delete the stream that billctl reads next; it costs milliseconds.)"""
    r = redis.Redis.from_url(REDIS_URL, protocol=2, decode_responses=True)
    engine = sa.create_engine(url)
    start = time.perf_counter()
    totals: Counter = Counter()
    n = 0
    last = "-"
    while True:
        batch = r.xrange(stream, min=last, max="+", count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for _entry_id, fields in batch:
            totals[fields["tenant_id"]] += int(fields.get("units", 1))
        n += len(batch)
        last = batch[-1][0]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS naive_usage (tenant text, units bigint)"))
        conn.execute(sa.text("INSERT INTO naive_usage VALUES (:t, :u)"), [{"t": t, "u": u} for t, u in totals.items()])
    elapsed = time.perf_counter() - start
    engine.dispose()
    r.close()
    return n / elapsed, n


def run_billctl(url: str, stream: str, max_events: int | None) -> tuple[dict, int]:
    """`billctl usage aggregate --drain -o json` in a subprocess: (its report, its peak RSS in bytes)."""
    env = {
        **os.environ,
        "BILLCTL_DATABASE_URL": url,
        "BILLCTL_REDIS_URL": REDIS_URL,
        "BILLCTL_STREAM_NAME": stream,
        "BILLCTL_USAGE_MAX_FUTURE_SECONDS": "3600",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "billctl", "-q", "usage", "aggregate", "--drain", "-o", "json"]
    if max_events:
        args += ["--max-events", str(max_events)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"billctl failed ({proc.returncode}): {err.read().decode()[-2000:]}")
    return json.loads(out), usage.ru_maxrss * 1024


def setup_db(url: str, tenants: int) -> None:
    seed_tenants(url, tenants)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="benchmarks stream")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"stream benchmark: {args.events:,} events, {args.tenants} tenants x {args.endpoints} endpoints")
    stream = "billctl-bench:api_stream"
    r = redis.Redis.from_url(REDIS_URL, protocol=2)
    url = scratch_database("billctl_bench_stream", fresh=True)
    with stage("database"):
        setup_db(url, args.tenants)
    with stage(f"producing {args.events:,} entries"):
        produce(r, stream, args.events, args.tenants, args.endpoints)
    with stage("R: raw XREADGROUP + parse"):
        rate_r, n_r = raw_rate(stream)
    with stage("naive: XRANGE + count + row per tenant"):
        rate_naive, _ = naive(stream, url)
    quarter = args.events // 4
    with stage(f"billctl usage aggregate, first {quarter:,} entries"):
        first, rss_small = run_billctl(url, stream, quarter)
    with stage("billctl usage aggregate --drain, the rest"):
        rest, rss_large = run_billctl(url, stream, None)
    read = first["read"] + rest["read"]
    seconds = first["seconds"] + rest["seconds"]
    rate_b = read / seconds
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT COALESCE(SUM(units), 0) FROM usage_bucket")).scalar()
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM usage_bucket")).scalar()
    engine.dispose()
    produced_units = sum(1 + i % 3 for i in range(args.events))
    left = r.xlen(stream)
    r.delete(stream, f"{stream}:dead")
    r.close()
    ratio = rate_b / rate_r
    report(
        "usage aggregate vs raw XREADGROUP (R)",
        [
            ("entries", f"{n_r:,}"),
            ("R (raw read + parse)", f"{rate_r:,.0f} entries/s"),
            ("naive (not exactly once)", f"{rate_naive:,.0f} entries/s ({rate_naive / rate_r:.2f} x R)"),
            ("billctl, exactly once", f"{rate_b:,.0f} entries/s"),
            ("billctl / R (target >= 0.4)", f"{ratio:.2f}  {'OK' if ratio >= 0.4 else 'BELOW TARGET'}"),
            (
                "units stored / produced",
                f"{stored:,} / {produced_units:,} {'OK' if stored == produced_units else 'MISMATCH'}",
            ),
            ("bucket rows", f"{rows:,}"),
            ("entries left in the stream", f"{left:,}"),
            (f"peak RSS, {first['read']:,} entries", f"{rss_small / 1e6:.0f} MB"),
            (f"peak RSS, {rest['read']:,} entries", f"{rss_large / 1e6:.0f} MB (target < 300)"),
        ],
    )
    return {"ratio": ratio, "rss_mb": rss_large / 1e6}


if __name__ == "__main__":
    main()
