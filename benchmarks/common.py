"""Helpers for benchmarks: a scratch PostgreSQL database and timing with ratios.

Every benchmark measures billctl and a baseline in the same run and prints their ratio
(absolute times drift on shared machines; ratios do not, much)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager

import sqlalchemy as sa

PG_ADMIN = os.environ.get("BILLCTL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def scratch_database(name: str, *, fresh: bool) -> str:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists and fresh:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = None
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """Fastest of ``runs`` wall-clock timings (the least disturbed by neighbours)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def stage(label: str):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    print(f"  {label} ...", end="", flush=True)
    yield
    print(f" {time.perf_counter() - start:.1f} s", flush=True)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n== {title}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def seed_tenants(url: str, tenants: int, plan: dict | None = None, *, email: bool = False) -> None:
    """Migrate ``url`` and add tenants t0 .. t<n-1> (UTC, USD, no tax), and with ``plan`` that plan,
    assigned to all of them from 2026-10-01."""
    from billctl.config import load_config
    from billctl.core.periods import Period
    from billctl.core.plans import parse_plan
    from billctl.db.engine import create_db_engine, upgrade
    from billctl.services.context import App
    from billctl.services.plans import create_plan

    engine = create_db_engine(url)
    upgrade(engine)
    with engine.begin() as conn:  # PostgreSQL or SQLite
        conn.execute(
            sa.text(
                "INSERT INTO tenant (key, name, email, timezone, currency, tax_rate, status, created_at, updated_at) "
                "VALUES (:key, :name, :email, 'UTC', 'USD', '0', 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            [
                {"key": f"t{g - 1}", "name": f"Tenant {g}", "email": f"billing@t{g}.test" if email else ""}
                for g in range(1, tenants + 1)
            ],
        )
    if plan is not None:
        app = App(config=load_config(None, {"database.url": url}, env={}))
        create_plan(app, parse_plan(plan))
        app.dispose()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO plan_assignment (tenant_id, plan_code, effective_at, created_at, actor) "
                    "SELECT id, :code, :at, now(), 'bench' FROM tenant"
                ),
                {"code": plan["name"], "at": Period.parse("2026-10").bounds("UTC")[0].replace(tzinfo=None)},
            )
    engine.dispose()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any ``window`` seconds (a rate limit's busiest moment)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
