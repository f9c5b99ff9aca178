"""`usage prune`: forgets exactly the event ids older than the dedupe window, and on PostgreSQL
reads only the old part of seen_event (the BRIN index on seen_at, kept exact while freed pages are
reused), not the whole 45 days."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from billctl.config import load_config
from billctl.services import usage_views
from billctl.services.context import App
from tests.conftest import Cli
from tests.helpers import events_file, units_by_tenant

DAY = 86_400


def _add_ids(engine: sa.Engine, first: int, count: int, seen_at: int) -> None:
    """``count`` ids (first .. first+count-1) first seen at ``seen_at``, appended as ingest would."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO seen_event (id_hash, seen_at) VALUES (:h, :s)"),
            [{"h": first + i, "s": seen_at} for i in range(count)],
        )


def test_prune_forgets_exactly_the_ids_older_than_the_window(cli: Cli, tmp_path) -> None:
    cli("tenants", "create", "acme", "--name", "Acme")
    cli(
        "usage", "import", events_file(tmp_path, [{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "event_id": "a"}])
    )
    engine = sa.create_engine(cli.db_url)
    now = int(time.time())
    _add_ids(engine, 1_000, 30, now - 46 * DAY)  # older than the 45-day window
    _add_ids(engine, 2_000, 20, now - 45 * DAY + 120)  # just inside it
    _add_ids(engine, 3_000, 10, now - 3 * DAY)
    dry = cli("usage", "prune", "--dry-run", "-o", "json").json()
    assert (dry["dropped"], dry["dry_run"]) == (30, True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM seen_event")).scalar() == 61  # dry run: nothing gone
    assert cli("usage", "prune", "-o", "json").json()["dropped"] == 30
    with engine.connect() as conn:
        left = {h for (h,) in conn.execute(sa.text("SELECT id_hash FROM seen_event WHERE id_hash >= 1000"))}
    engine.dispose()
    assert left == set(range(2_000, 2_020)) | set(range(3_000, 3_010))
    assert "forgot 0 event ids older than 45 days" in cli("usage", "prune").stderr
    # the imported event (seen just now) is still recognised: importing it again counts nothing
    cli(
        "usage", "import", events_file(tmp_path, [{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "event_id": "a"}])
    )
    assert units_by_tenant(cli.db_url) == {"acme": 1}


POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the BRIN index is PostgreSQL's


@POSTGRES_ONLY
def test_prune_reads_only_the_old_block_ranges_day_after_day(db_url: str, monkeypatch) -> None:
    """Ten days of ids; each cycle a new day arrives (into the pages a prune freed, after VACUUM)
    and the oldest day is pruned. The heap blocks a prune reads stay about one day's worth, cycle
    after cycle (a full scan reads all ten days; a BRIN index left alone drifts towards that).
    SQLite scans seen_event: cheap next to the deletes themselves (benchmarks/prune.py)."""
    per_day, days = 12_000, 10  # about 66 pages a day
    app = App(config=load_config(None, {"database.url": db_url}, env={}))
    engine = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    now = int(time.time())
    start = now - 46 * DAY  # day d is first seen at start + d days; day 0 is already out of the window
    for d in range(days):
        _add_ids(engine, d * per_day, per_day, start + d * DAY)
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE seen_event")
        pages = conn.execute(sa.text("SELECT relpages FROM pg_class WHERE relname = 'seen_event'")).scalar()

    fetched: list[int] = []
    prune_pg = usage_views._prune_pg

    def measured(conn, cutoff):  # type: ignore[no-untyped-def]
        count = sa.text("SELECT pg_stat_get_xact_blocks_fetched('seen_event'::regclass)")
        before = conn.execute(count).scalar()
        result = prune_pg(conn, cutoff)
        # a deleted row costs two fetches of its page whatever the scan (the delete, and RETURNING)
        fetched.append(conn.execute(count).scalar() - before - 2 * result.dropped)
        return result

    monkeypatch.setattr(usage_views, "_prune_pg", measured)
    for cycle in range(6):
        _add_ids(engine, (days + cycle) * per_day, per_day, now)  # today's ids, into freed pages
        result = usage_views.prune_seen(app, now=now + cycle * DAY)
        assert (result.dropped, result.warning) == (per_day, None)
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM seen_event")  # as autovacuum would: the pages are free again
            oldest = conn.execute(sa.text("SELECT MIN(seen_at) FROM seen_event")).scalar()
        assert oldest == start + (cycle + 1) * DAY
    app.dispose()
    engine.dispose()
    assert max(fetched) < 0.4 * pages, (fetched, pages)  # about 2 of the 10 days; a full scan reads 10


@POSTGRES_ONLY
def test_a_role_that_does_not_own_the_index_still_prunes_and_is_told(db_url: str) -> None:
    import uuid

    role = f"billctl_pruner_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    now = int(time.time())
    _add_ids(admin, 0, 50, now - 50 * DAY)
    _add_ids(admin, 50, 50, now)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT SELECT, DELETE ON seen_event TO {role}")
        conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {role}")
    url = sa.engine.make_url(db_url).set(username=role).render_as_string(hide_password=False)
    app = App(config=load_config(None, {"database.url": url}, env={}))
    try:
        result = usage_views.prune_seen(app)
    finally:
        app.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT MIN(id_hash), COUNT(*) FROM seen_event")).one() == (50, 50)
    admin.dispose()
    assert result.dropped == 50
    assert result.warning and "ix_seen_event_seen_at was not maintained" in result.warning
    assert "must be owner" in result.warning
