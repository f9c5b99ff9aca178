"""The database schema for `billctl db upgrade|status` (the only commands that run Alembic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billctl.services.context import App


def upgrade_schema(app: App) -> tuple[str | None, str]:
    """Create or upgrade the schema to head (a new SQLite file is created); returns (before, after)."""
    from billctl.db import engine as db

    return db.upgrade(app.raw_engine(create=True))


def schema_status(app: App) -> tuple[str | None, str]:
    """(the revision in the database, the one this billctl needs)."""
    from billctl.db import engine as db

    engine = app.raw_engine()
    db.check_reachable(engine)
    return db.current_revision(engine), db.head_revision()


def require_current_schema(app: App) -> None:
    """Fail now (naming `billctl db upgrade`) unless the database is reachable and its schema current."""
    _ = app.engine  # the App checks the schema when it first builds the engine
