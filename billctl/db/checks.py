"""The schema-is-current check without Alembic: the ``alembic_version`` row against the revisions
this billctl ships.

Every command that touches the database runs this check, so it must not import Alembic (and, through
it, Mako): the revisions are listed here, in order, and a unit test checks that the list names every
file in ``billctl/migrations/versions`` (a new migration cannot be forgotten). Alembic itself runs
only for `billctl db upgrade`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billctl.errors import SchemaBehind

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
"""Every migration's revision id, oldest first (a new migration appends its id here)."""
HEAD = REVISIONS[-1]
VERSION_TABLE = "alembic_version"


def judge(current: str | None) -> None:
    """Refuse a schema that is missing, behind or newer than this billctl, naming what to do
    (the same messages whether the revision was read through SQLAlchemy or the sqlite3 driver)."""
    if current == HEAD:
        return
    if current is None:
        raise SchemaBehind("the database has no billctl schema yet", hint="run `billctl db upgrade`")
    if current not in REVISIONS:
        raise SchemaBehind(
            f"the database schema ({current}) is newer than this billctl ({HEAD})", hint="upgrade billctl"
        )
    raise SchemaBehind(
        f"the database schema is behind ({current}, this billctl needs {HEAD})", hint="run `billctl db upgrade`"
    )


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database (None when it has no schema yet)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise SchemaBehind(f"the database has several schema heads ({', '.join(sorted(rows))})")
    return rows[0] if rows else None


def require_current(engine: Engine) -> None:
    """Refuse to work on a schema that is missing or behind, naming the command to run."""
    from billctl.db.engine import check_reachable

    check_reachable(engine)
    judge(current_revision(engine))
