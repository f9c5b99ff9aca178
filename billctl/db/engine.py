"""Engine creation, schema migrations (Alembic) and the schema-is-current check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from billctl.config import redact_url
from billctl.db.sqlite_files import SQLITE_HEADER, check_sqlite_file  # noqa: F401 (light: the read path uses them)
from billctl.errors import DependencyDown, SchemaBehind

if TYPE_CHECKING:  # Alembic (and Mako) only for `db upgrade` / `db status`
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str, *, create: bool = False) -> Engine:
    """An engine for ``url``. A SQLite file is checked first (its directory, that it is a SQLite
    database) and is never created unless ``create`` (only `billctl db upgrade` creates one: a
    mistyped path must not leave an empty database behind)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            check_sqlite_file(path, create=create)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database). ``sqlite:///file:PATH?mode=ro&uri=true``
    names PATH."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


READ_ONLY_HINT = {
    "sqlite": "billctl needs write access: make the file and its directory writable (SQLite keeps a WAL journal "
    "beside the file), and drop mode=ro from the URL",
    "postgresql": "billctl needs write access: connect to the primary, not a read-only standby, as a role "
    "that may write",
}


def database_error(exc: sa.exc.DBAPIError, url: str) -> DependencyDown | None:
    """The one-line error for a database that cannot be used (None when ``exc`` is not about that,
    e.g. a constraint violation): a read-only database and a file that cannot be opened are named
    as such, not as a server that might be down."""
    reason = (str(exc.orig) if exc.orig is not None else str(exc)).strip().splitlines()[0]
    where = redact_url(url)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "25006" or "readonly database" in reason:
        hint = READ_ONLY_HINT["sqlite" if url.startswith("sqlite") else "postgresql"]
        return DependencyDown(f"the database at {where} is read-only: {reason}", hint=hint)
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    if url.startswith("sqlite"):
        return DependencyDown(
            f"cannot use the SQLite database {where}: {reason}",
            hint="check that the file and its directory exist and are readable and writable",
        )
    return DependencyDown(
        f"database unreachable at {where}: {reason}",
        hint="is the server running and database.url right? see `billctl config show`",
    )


def check_reachable(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise (database_error(exc, engine.url.render_as_string(hide_password=False)) or exc) from None


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; returns (before, after)."""
    from alembic import command

    check_reachable(engine)
    before = current_revision(engine)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(engine) or ""


def require_current(engine: Engine) -> None:
    """Refuse to work on a schema that is missing or behind, naming the command to run."""
    check_reachable(engine)
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaBehind("the database has no billctl schema yet", hint="run `billctl db upgrade`")
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaBehind(
            f"the database schema ({current}) is newer than this billctl ({head})", hint="upgrade billctl"
        )
    raise SchemaBehind(
        f"the database schema is behind ({current}, this billctl needs {head})", hint="run `billctl db upgrade`"
    )
