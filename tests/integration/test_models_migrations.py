"""The model declarations (billctl/db/models.py) and the Alembic migrations describe the same
schema: a database migrated to head differs from the models in nothing Alembic can compare (tables,
columns, types, nullability, indexes, unique constraints), on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

# The BRIN index on seen_event.seen_at exists on PostgreSQL only (migration 0006): SQLite has no BRIN.
POSTGRES_ONLY_INDEXES = {"ix_seen_event_seen_at"}


def _differences(url: str) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import billctl.db.models  # noqa: F401  (declares the tables on SQLModel.metadata)

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    if not url.startswith("postgresql"):
        diff = [
            d for d in diff if not (isinstance(d, tuple) and d[0] == "add_index" and d[1].name in POSTGRES_ONLY_INDEXES)
        ]
    return diff


def test_models_and_migrations_agree(db_url: str) -> None:
    assert _differences(db_url) == []
