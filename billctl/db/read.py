"""A light read path for listings on SQLite: the standard library's ``sqlite3`` driver, no SQLAlchemy,
no models, so a read-only command such as `billctl tenants list` starts fast.

Only listings use it, read-only (``mode=ro``), after the same checks as the normal path: the file
must be a SQLite database and its schema current (the ``alembic_version`` row against
``billctl.db.checks.REVISIONS``, with the same messages). PostgreSQL keeps the normal path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as url_quote

from billctl.db.checks import VERSION_TABLE, judge
from billctl.errors import DependencyDown

if TYPE_CHECKING:
    from billctl.config import Config


def sqlite_reader(config: Config) -> sqlite3.Connection | None:
    """A read-only connection to the configured SQLite database on a current schema, or None when the
    database is not a plain SQLite file (PostgreSQL, in-memory, a URI with options): then use the
    normal path."""
    url = config.database.url
    if not url.startswith("sqlite:///") or "?" in url or url.startswith("sqlite:///file:"):  # plain files only
        return None
    from pathlib import Path

    from billctl.db.sqlite_files import check_sqlite_file

    database = url[len("sqlite:///") :]
    if database in ("", ":memory:"):
        return None
    path = Path(database)
    check_sqlite_file(path, create=False)  # the same refusals as the normal path
    try:
        conn = sqlite3.connect(f"file:{url_quote(str(Path(path).resolve()))}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        judge(_revision(conn))
    except sqlite3.Error as exc:
        raise DependencyDown(
            f"cannot use the SQLite database {path}: {exc}",
            hint="check that the file and its directory exist and are readable and writable",
        ) from None
    return conn


def _revision(conn: sqlite3.Connection) -> str | None:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)).fetchone()
    if found is None:
        return None
    row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return None if row is None else str(row[0])


def _utc(value: Any) -> datetime:
    """A stored timestamp (naive UTC text, as SQLAlchemy writes it) as an aware datetime."""
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


TENANT_COLUMNS = "key, name, email, timezone, currency, tax_rate, status, external_id, created_at"


def tenants(conn: sqlite3.Connection, status: str | None = None) -> Iterator[tuple[Any, ...]]:
    """Tenant rows (the columns of ``TENANT_COLUMNS``), ordered by key, optionally of one status."""
    query = f"SELECT {TENANT_COLUMNS} FROM tenant"
    params: tuple[str, ...] = ()
    if status is not None:
        query += " WHERE status = ?"
        params = (status,)
    for row in conn.execute(query + " ORDER BY key", params):
        yield (*row[:-1], _utc(row[-1]))
