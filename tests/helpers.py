"""Small builders shared by the integration tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_plan(tmp: Path, name: str, body: str) -> str:
    path = tmp / f"{name}.toml"
    path.write_text(body)
    return str(path)


def events_file(tmp: Path, events: list[dict], name: str = "events.ndjson") -> str:
    path = tmp / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def bulk(
    tenant: str,
    units: int,
    *,
    endpoint: str = "/v1/search",
    day: str = "2026-10-10",
    prefix: str = "e",
    chunks: int = 1,
) -> list[dict]:
    """``units`` spread over ``chunks`` events of one tenant on one day."""
    per, rest = divmod(units, chunks)
    return [
        {
            "tenant_id": tenant,
            "endpoint": endpoint,
            "ts": f"{day}T12:{i % 60:02d}:00Z",
            "units": per + (rest if i == 0 else 0),
            "event_id": f"{prefix}-{tenant}-{endpoint}-{day}-{i}",
        }
        for i in range(chunks)
    ]


BASIC = """
name = "basic"
currency = "USD"
base_fee = "29.00"
included_units = 10000
[price]
model = "per_unit"
unit_price = "0.001"
[weights]
"/v1/ocr" = 3
"""


def sql_rows(db_url: str, query: str) -> list[tuple]:
    """The rows of one query, straight from the database (a connection of its own)."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(sa.text(query))]
    engine.dispose()
    return rows


def units_by_tenant(db_url: str) -> dict[str, int]:
    """Units stored per tenant key, straight from usage_bucket."""
    query = "SELECT t.key, SUM(b.units) FROM usage_bucket b JOIN tenant t ON t.id = b.tenant_id GROUP BY t.key"
    return {key: int(units) for key, units in sql_rows(db_url, query)}


def three_tenants(cli: Any, tmp_path: Path, zones: dict[str, str] | None = None) -> None:
    """acme, globex, initech on `basic` from September, October usage imported."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    for key in ("acme", "globex", "initech"):
        cli("tenants", "create", key, "--timezone", (zones or {}).get(key, "UTC"))
        cli("tenants", "assign-plan", key, "basic", "--effective", "2026-09-01")
    cli("usage", "import", events_file(tmp_path, [e for k in ("acme", "globex") for e in bulk(k, 20_000)]))


def plan_beyond_the_bounds(db_url: str, tenant: str) -> None:
    """A plan with a base fee of 10^20 USD, written straight into the database (validation refuses
    it, as an older billctl or a hand edit might not have), and `tenant` on it."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from sqlmodel import Session, select

    from billctl.db.models import Plan, PlanAssignment, Tenant

    engine = sa.create_engine(db_url)
    with Session(engine) as session:
        definition = {
            "name": "huge",
            "currency": "USD",
            "base_fee": "1" + "0" * 20,
            "included_units": 0,
            "price": {"model": "per_unit", "unit_price": "0.001"},
        }
        session.add(Plan(code="huge", version=1, currency="USD", definition=definition))
        tenant_id = session.exec(select(Tenant.id).where(Tenant.key == tenant)).one()
        effective = datetime(2026, 9, 1, tzinfo=UTC)
        session.add(PlanAssignment(tenant_id=tenant_id, plan_code="huge", effective_at=effective, actor="hand edit"))
        session.commit()
    engine.dispose()


TIERED = """
name = "tiered"
currency = "USD"
base_fee = "10.00"
[price]
model = "graduated"
tiers = [{ up_to = 1000, unit_price = "0.01", flat_fee = "1.00" }, { unit_price = "0.005" }]
"""


def seed_october(root: Path) -> Path:
    """A SQLite database with October 2026 closed: acme (UTC, basic, a 10 % discount), globex
    (Asia/Kolkata, tiered) and initech (UTC, basic), usage, every invoice finalized. WAL folded in,
    so the file can be copied as is."""
    import os
    import sqlite3

    from tests.conftest import Cli

    path = root / "seed.db"
    cwd = Path.cwd()
    os.chdir(root)
    try:
        cli = Cli(db_url=f"sqlite:///{path}", env={})
        cli("db", "upgrade")
        cli("plans", "create", "--file", write_plan(root, "basic", BASIC))
        cli("plans", "create", "--file", write_plan(root, "tiered", TIERED))
        tenants = (("acme", "UTC", "basic"), ("globex", "Asia/Kolkata", "tiered"), ("initech", "UTC", "basic"))
        for key, tz, plan in tenants:
            cli("tenants", "create", key, "--timezone", tz, "--email", f"billing@{key}.test")
            cli("tenants", "assign-plan", key, plan, "--effective", "2026-09-01")
        cli("usage", "import", events_file(root, bulk("acme", 25_000, chunks=5) + bulk("globex", 3_000, chunks=3)))
        cli("discounts", "add", "acme", "--kind", "percent", "--value", "10", "--from", "2026-10-01")
        cli("invoices", "finalize", "--period", "2026-10", "--yes")
    finally:
        os.chdir(cwd)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def sqlite_snapshot(path: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Table -> digest of its sorted rows: equal snapshots, an unchanged database."""
    import hashlib
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        digests = {}
        for table in tables:
            if table in skip:
                continue
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            digests[table] = hashlib.sha256("\n".join(rows).encode("utf-8", "backslashreplace")).hexdigest()
        return digests
    finally:
        conn.close()
