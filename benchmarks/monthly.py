"""Issue 5 benchmark: `run-monthly` for 10,000 tenants end to end against the local PostgreSQL and
Redis and FakeStripe (in its own process, throttled to 100 requests/s), with the time of each step.

    python -m benchmarks monthly [--tenants 10000] [--endpoints 5] [--stream-events 100000] [--no-stripe]

Target: every step except the Stripe ones (bound by the rate limit: about 7 requests per tenant,
so ~12 minutes for 10,000 tenants at 100/s) takes under a minute in all. The baseline measured in
the same run is a bare SQL GROUP BY over the period's usage rows (what any close must at least read).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import redis
import sqlalchemy as sa

from benchmarks.common import best_of, report, scratch_database, seed_tenants, stage
from benchmarks.stream import REDIS_URL
from benchmarks.stripe_push import KEY, _serve


def load(url: str, tenants: int, endpoints: int) -> None:
    from billctl.core.periods import Period
    from billctl.db.engine import create_db_engine

    plan = {
        "name": "bench",
        "currency": "USD",
        "base_fee": "29.00",
        "included_units": 1000,
        "price": {"model": "per_unit", "unit_price": "0.001"},
        "weights": {"/v1/ep0": "3"},
    }
    seed_tenants(url, tenants, plan, email=True)
    engine = create_db_engine(url)
    start, end = Period.parse("2026-10").bounds("UTC")
    s, e = int(start.timestamp()), int(end.timestamp())
    with engine.begin() as conn:
        conn.execute(  # one bucket per endpoint and day
            sa.text(
                "INSERT INTO usage_bucket (tenant_id, bucket_start, endpoint, units, events) "
                "SELECT t.id, d, '/v1/ep' || ep, 10 + ((t.id * 7 + ep * 13 + d / 86400) % 90), 1 "
                "FROM tenant t, generate_series(0, :eps - 1) ep, generate_series(:s, :e - 1, 86400) d"
            ),
            {"eps": endpoints, "s": s, "e": e},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def produce(stream: str, events: int, tenants: int) -> None:
    from datetime import UTC, datetime

    r = redis.Redis.from_url(REDIS_URL, protocol=2)
    r.delete(stream, f"{stream}:dead")
    ts = int(datetime(2026, 10, 31, 12, tzinfo=UTC).timestamp() * 1000)
    pipe = r.pipeline(transaction=False)
    for i in range(events):
        pipe.xadd(
            stream,
            {"tenant_id": f"t{i % tenants}", "endpoint": "/v1/ep1", "ts": ts + i, "units": 1, "event_id": f"late-{i}"},
        )
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    r.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="benchmarks monthly")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--stream-events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--no-stripe", action="store_true", help="skip the Stripe steps (no key)")
    args = parser.parse_args(argv)

    from billctl.config import load_config
    from billctl.core.periods import Period
    from billctl.logs import RunLog
    from billctl.services.context import App
    from billctl.services.monthly import MonthlyRun

    print(
        f"monthly benchmark: {args.tenants:,} tenants x {args.endpoints} endpoints x 31 days, "
        f"{args.stream_events:,} stream events, Stripe {'off' if args.no_stripe else f'at {args.rate:g}/s'}"
    )
    url = scratch_database(f"billctl_bench_monthly_{args.tenants}", fresh=True)
    stream = "billctl-bench:monthly"
    with stage("loading"):
        load(url, args.tenants, args.endpoints)
    with stage(f"producing {args.stream_events:,} stream events"):
        produce(stream, args.stream_events, args.tenants)
    env: dict[str, str] = {}
    server = parent = None
    if not args.no_stripe:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        server = ctx.Process(target=_serve, args=(child, args.rate, 0.0), daemon=True)
        server.start()
        env = {"BILLCTL_STRIPE_API_KEY": KEY, "BILLCTL_STRIPE_API_BASE": parent.recv()}
    settings = {
        "database.url": url,
        "redis.url": REDIS_URL,
        "stream.name": stream,
        "stripe.max_requests_per_second": str(args.rate),
        "monthly.hold_multiple": "0",
    }
    app = App(config=load_config(None, settings, env=env), actor="benchmark")
    start, end = Period.parse("2026-10").bounds("UTC")

    def bare_group_by() -> None:
        with app.engine.connect() as conn:
            for _ in conn.execution_options(stream_results=True).execute(
                sa.text(
                    "SELECT tenant_id, endpoint, SUM(units) FROM usage_bucket "
                    "WHERE bucket_start >= :s AND bucket_start < :e GROUP BY tenant_id, endpoint"
                ),
                {"s": int(start.timestamp()), "e": int(end.timestamp())},
            ):
                pass

    with stage("baseline: bare GROUP BY, best of 3"):
        base = best_of(3, bare_group_by)
    with stage("run-monthly"):
        started = time.perf_counter()
        result = MonthlyRun(app, Period.parse("2026-10"), dry_run=False, log=RunLog("bench", enabled=False)).run()
        total = time.perf_counter() - started
    if parent is not None:
        parent.send("dump")
        parent.recv()
        server.join(timeout=10)  # type: ignore[union-attr]
    app.dispose()
    steps = {s["step"]: s["seconds"] for s in result.steps}
    local = sum(v for k, v in steps.items() if k in ("usage", "finalize", "guardrails"))
    rows = [(f"step {s['step']}", f"{s['seconds']:.1f} s ({s['state']})") for s in result.steps]
    rows += [
        ("invoices finalized", f"{sum(1 for i in result.invoices if i['outcome'] == 'finalized'):,}"),
        ("stream events drained", f"{result.usage.get('counted', 0):,}"),
        ("baseline: bare GROUP BY of the period", f"{base:.2f} s"),
        (
            "usage + finalize + guardrails",
            f"{local:.1f} s ({local / base:.1f}x the GROUP BY; target < 60 s: {'OK' if local < 60 else 'ABOVE'})",
        ),
        ("whole close", f"{total:.1f} s, exit code {int(result.exit_code)}"),
    ]
    report("run-monthly", rows)
    return {"local_seconds": local}


if __name__ == "__main__":
    main()
