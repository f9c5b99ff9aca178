"""Issue 10 benchmark: `usage prune` of ONE day out of 45 days of event ids, as a ratio to the time
billctl takes to ingest one day (measured in the same run, through the same path as the stream:
``apply_events`` in transactions of ``stream.batch_events``).

Scale: ``--per-day`` ids a day (default 100,000: the issue's 15 M events a month is 500,000 a day;
``--per-day 500000`` runs that, in about five times as long). The ratio does not depend on the
scale when pruning costs what it removes; a full scan's ratio does not either (both grow with the
daily volume) but grows with the number of days kept.

Each cycle ingests a new day, prunes the oldest day and runs VACUUM (what autovacuum does: the
pages freed are then reused by the next day's ids, the case that degrades a BRIN index left alone):

- PostgreSQL: `usage prune` (BRIN index on seen_at, kept exact), cycle after cycle; then, in the
  same run, the statement prune ran before (a full scan of seen_event) for comparison;
- SQLite: `usage prune` (a full scan: no index), and what a B-tree index on seen_at would cost on
  every ingest and save on the prune.

    python -m benchmarks prune [--per-day 100000] [--days 45] [--cycles 3] [--backend postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.common import report, scratch_database, seed_tenants, stage

DAY = 86_400
# 10 tenants x 3 endpoints x 288 five-minute buckets: about 12 events per bucket row at 100,000 a
# day, as in the stream benchmark (fewer rows per event make a day's ingest cheaper, the ratio harsher)
TENANTS, ENDPOINTS, BATCH = 10, 3, 100_000


def _app(url: str, days: int):  # type: ignore[no-untyped-def]
    from billctl.config import load_config
    from billctl.services.context import App

    return App(config=load_config(None, {"database.url": url, "usage.dedupe_days": str(days)}, env={}))


def _history(url: str, days: int, per_day: int, start: int) -> None:
    """``days`` days of ids, day d first seen at start + d days, appended day after day as ingest would
    (an engine of its own: SQLite gets a large page cache for this, not for what is measured)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA cache_size = -524288"))
    for d in range(days):
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text(
                        "INSERT INTO seen_event (id_hash, seen_at) SELECT CAST(random() * 1.8e19 - 9.0e18 AS bigint), "
                        ":at FROM generate_series(1, :n) ON CONFLICT DO NOTHING"
                    ),
                    {"at": start + d * DAY, "n": per_day},
                )
            else:  # SQLite's random() is a random signed 64-bit integer
                conn.execute(
                    sa.text(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
                        "INSERT INTO seen_event (id_hash, seen_at) SELECT random(), :at FROM n WHERE true "
                        "ON CONFLICT DO NOTHING"
                    ),
                    {"at": start + d * DAY, "n": per_day},
                )
    engine.dispose()


def _ingest_day(app, per_day: int, rng: random.Random) -> float:  # type: ignore[no-untyped-def]
    """One day of new events through billctl's ingest statement (ids and buckets), timed."""
    from billctl.services.usage import apply_events, tenant_directory

    with app.engine.connect() as conn:
        tenants = tenant_directory(conn)
    ids = [info.id for info in tenants.values()]
    now = int(time.time())
    rows = {
        rng.getrandbits(64) - 2**63: (
            ids[i % TENANTS],
            (now - DAY + i * DAY // per_day) // 300 * 300,
            f"/v1/e{i % ENDPOINTS}",
            1,
        )
        for i in range(per_day)
    }
    items = list(rows.items())
    started = time.perf_counter()
    for i in range(0, len(items), BATCH):
        with app.engine.begin() as conn:
            apply_events(conn, [], tenants, 300, fresh=dict(items[i : i + BATCH]))
    return time.perf_counter() - started


def _vacuum(engine: sa.Engine) -> float:
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM seen_event")
    return time.perf_counter() - started


def _timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _full_scan_prune(engine: sa.Engine, cutoff: int) -> int:
    """What `usage prune` ran before: one DELETE, which reads the whole table."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
        return int(conn.execute(sa.text("DELETE FROM seen_event WHERE seen_at < :c"), {"c": cutoff}).rowcount)


def _cycles(app, label: str, prune, first: int, cycles: int, per_day: int, rng: random.Random):  # type: ignore[no-untyped-def]
    """``cycles`` times: ingest a new day (timed), prune the oldest day with ``prune(cycle)`` (timed),
    VACUUM. Returns (ingest times, prune times, report rows)."""
    ingests, prunes, rows = [], [], []
    for cycle in range(first, first + cycles):
        with stage(f"{label}, cycle {cycle + 1}: ingest a day, prune the oldest day, VACUUM"):
            ingests.append(_ingest_day(app, per_day, rng))
            started = time.perf_counter()
            dropped = prune(cycle)
            prunes.append(time.perf_counter() - started)
            vacuum = _vacuum(app.engine)
        rows.append(
            (
                f"{label}, cycle {cycle + 1}: {dropped:,} ids",
                f"prune {prunes[-1]:.3f} s = {prunes[-1] / ingests[-1]:.3f} x the day's ingest "
                f"({ingests[-1]:.2f} s); then VACUUM {vacuum:.1f} s",
            )
        )
    return ingests, prunes, rows


def run_backend(backend: str, per_day: int, days: int, cycles: int) -> dict[str, float]:
    from billctl.services.usage_views import prune_seen

    if backend == "postgresql":
        url = scratch_database("billctl_bench_prune", fresh=True)
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='billctl-bench-prune-')) / 'billctl.db'}"
    rng = random.Random(10)
    seed_tenants(url, TENANTS)
    app = _app(url, days)
    now = int(time.time())
    with stage(f"{backend}: {days} days x {per_day:,} ids"):
        _history(url, days, per_day, now - (days + 1) * DAY)  # day 0 is just out of the window
        if backend == "postgresql":
            with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE seen_event")

    def billctl(cycle: int) -> int:
        return prune_seen(app, now=now + cycle * DAY).dropped

    def full_scan(cycle: int) -> int:  # what `usage prune` ran before: one DELETE reading the whole table
        with app.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
                conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
            cutoff = now + (cycle - days) * DAY
            return int(conn.execute(sa.text("DELETE FROM seen_event WHERE seen_at < :c"), {"c": cutoff}).rowcount)

    ingests, prunes, rows = _cycles(app, "usage prune", billctl, 0, cycles, per_day, rng)
    ratio = statistics.median(p / i for p, i in zip(prunes, ingests, strict=True))
    document = {"prune_ratio": ratio}
    summary = [("usage prune / a day's ingest (median)", f"{ratio:.3f}")]
    if backend == "postgresql":
        base_ingests, base_prunes, base_rows = _cycles(
            app, "before: full scan", full_scan, cycles, cycles, per_day, rng
        )
        base = statistics.median(p / i for p, i in zip(base_prunes, base_ingests, strict=True))
        document["full_scan_ratio"] = base
        summary.append(("before (full scan) / a day's ingest (median)", f"{base:.3f}"))
    else:  # SQLite prunes with a full scan; what would a B-tree index on seen_at cost and save?
        with app.engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX bench_seen_at ON seen_event (seen_at)")
        base_ingests, base_prunes, base_rows = _cycles(app, "with an index", full_scan, cycles, cycles, per_day, rng)
        cost = min(base_ingests) / min(ingests)
        document["index_ingest_cost"] = cost
        summary.append(("a day's ingest with an index / without (best of each)", f"{cost:.2f}"))
        summary.append(("prune with an index / without (best of each)", f"{min(base_prunes) / min(prunes):.2f}"))
    app.dispose()
    report(f"usage prune, {backend}: one day of {days} ({per_day:,} ids a day)", rows + base_rows + summary)
    return document


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="benchmarks prune")
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--backend", default="postgresql,sqlite")
    args = parser.parse_args(argv)
    print(f"prune benchmark: {args.days} days x {args.per_day:,} ids a day, {args.cycles} cycles")
    return {backend: run_backend(backend, args.per_day, args.days, args.cycles) for backend in args.backend.split(",")}


if __name__ == "__main__":
    main()
