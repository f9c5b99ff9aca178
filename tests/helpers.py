"""Small builders shared by the integration tests."""

from __future__ import annotations

import json
from pathlib import Path


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


def units_by_tenant(db_url: str) -> dict[str, int]:
    """Units stored per tenant key, straight from usage_bucket."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT t.key, SUM(b.units) FROM usage_bucket b JOIN tenant t ON t.id = b.tenant_id GROUP BY t.key")
        ).all()
    engine.dispose()
    return {key: int(units) for key, units in rows}
