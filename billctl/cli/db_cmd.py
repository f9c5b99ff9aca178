"""billctl db upgrade|status"""

from __future__ import annotations

import typer

from billctl.cli.common import OutputOpt, state
from billctl.config import redact_url
from billctl.db import engine as db

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema to this billctl's version (SQLite or PostgreSQL)."""
    st = state(ctx)
    engine = st.app.raw_engine(create=True)
    before, after = db.upgrade(engine)
    where = redact_url(st.app.config["database.url"])
    if before == after:
        st.out.success(f"schema already current ({after}) at {where}")
    else:
        st.out.success(f"schema upgraded {before or 'empty'} → {after} at {where}")


@app.command("status")
def status(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show the schema revision in the database and the one this billctl needs."""
    st = state(ctx)
    engine = st.app.raw_engine()
    db.check_reachable(engine)
    current, head = db.current_revision(engine), db.head_revision()
    out = st.output(output)
    doc = {
        "database": redact_url(st.app.config["database.url"]),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    out.rows(["database", "current", "head", "up_to_date"], [tuple(doc.values())], documents=[doc])
    if current != head:
        raise typer.Exit(8)
