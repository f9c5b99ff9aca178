"""Issue 2 benchmark: preview of 1,000 tenants x 20 endpoints x a month of hourly usage
(about 14.9M bucket rows) on PostgreSQL, as a ratio to a bare SQL GROUP BY over the same rows,
and peak Python memory after 10 % of the tenants versus after all of them.

    python -m benchmarks preview [--tenants 1000] [--endpoints 20] [--fresh]

Target: ratio <= 1.5 and memory that does not grow with the number of tenants.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import sqlalchemy as sa

from benchmarks.common import best_of, report, scratch_database, seed_tenants, stage

PLAN = {
    "name": "bench",
    "currency": "USD",
    "base_fee": "29.00",
    "included_units": 10000,
    "price": {
        "model": "graduated",
        "tiers": [
            {"up_to": 100000, "unit_price": "0.0008"},
            {"up_to": 1000000, "unit_price": "0.0005"},
            {"unit_price": "0.0002"},
        ],
    },
    "weights": {"/v1/ep0": "3"},
}


def load(url: str, tenants: int, endpoints: int) -> None:
    from billctl.core.periods import Period
    from billctl.db.engine import create_db_engine, upgrade

    engine = create_db_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT COUNT(*) FROM tenant")).scalar() == tenants:
            return
    seed_tenants(url, tenants, PLAN)
    start, end = Period.parse("2026-10").bounds("UTC")
    s, e = int(start.timestamp()), int(end.timestamp())
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage_bucket (tenant_id, bucket_start, endpoint, units, events) "
                "SELECT t.id, h, '/v1/ep' || ep, 1 + ((t.id * 7 + ep * 13 + h / 3600) % 50), 1 "
                "FROM tenant t, generate_series(0, :eps - 1) ep, generate_series(:s, :e - 1, 3600) h"
            ),
            {"eps": endpoints, "s": s, "e": e},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE usage_bucket"))
    engine.dispose()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="benchmarks preview")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the data set")
    args = parser.parse_args(argv)

    from billctl.config import load_config
    from billctl.core.periods import Period
    from billctl.services.context import App
    from billctl.services.invoices import iter_preview

    print(f"preview benchmark: {args.tenants} tenants x {args.endpoints} endpoints x 744 hours")
    url = scratch_database(f"billctl_bench_preview_{args.tenants}_{args.endpoints}", fresh=args.fresh)
    with stage("loading data (reused when present)"):
        load(url, args.tenants, args.endpoints)
    app = App(config=load_config(None, {"database.url": url}, env={}))
    period = Period.parse("2026-10")
    start, end = period.bounds("UTC")
    with app.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM usage_bucket")).scalar()

    def bare_group_by() -> None:
        with app.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
                sa.text(
                    "SELECT tenant_id, endpoint, SUM(units) FROM usage_bucket "
                    "WHERE bucket_start >= :s AND bucket_start < :e GROUP BY tenant_id, endpoint"
                ),
                {"s": int(start.timestamp()), "e": int(end.timestamp())},
            )
            for _ in result:
                pass

    totals: dict[str, int] = {}

    def preview() -> None:
        totals.clear()
        for priced in iter_preview(app, period):
            totals[priced.tenant.key] = priced.draft.total

    with stage("warm-up"):
        bare_group_by()
        preview()
    assert len(totals) == args.tenants
    with stage(f"bare GROUP BY, best of {args.runs}"):
        base = best_of(args.runs, bare_group_by)
    with stage(f"billctl preview, best of {args.runs}"):
        ours = best_of(args.runs, preview)

    gc.collect()
    tracemalloc.start()
    peaks: dict[int, int] = {}
    for n, _ in enumerate(iter_preview(app, period), start=1):
        if n in (args.tenants // 10, args.tenants):
            peaks[n] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    small, large = peaks[args.tenants // 10], peaks[args.tenants]
    ratio = ours / base
    report(
        "preview vs bare GROUP BY",
        [
            ("bucket rows", f"{rows:,}"),
            ("bare GROUP BY", f"{base:.2f} s"),
            ("billctl preview", f"{ours:.2f} s ({args.tenants / ours:,.0f} tenants/s)"),
            ("ratio (target <= 1.5)", f"{ratio:.2f}x  {'OK' if ratio <= 1.5 else 'ABOVE TARGET'}"),
            (f"peak Python memory after {args.tenants // 10} tenants", f"{small / 1e6:.1f} MB"),
            (f"peak Python memory after {args.tenants} tenants", f"{large / 1e6:.1f} MB"),
            ("memory growth ratio", f"{large / small:.2f}x"),
        ],
    )
    app.dispose()
    return {"ratio": ratio, "memory_growth": large / small}


if __name__ == "__main__":
    main()
