"""billctl db upgrade|status"""

from __future__ import annotations

import typer

from billctl.cli.common import OutputOpt, state
from billctl.config import redact_url
from billctl.errors import SchemaBehind

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema to this billctl's version (SQLite or PostgreSQL)."""
    from billctl.services.schema_views import upgrade_schema

    st = state(ctx)
    before, after = upgrade_schema(st.app)
    where = redact_url(st.app.config.database.url)
    if before == after:
        st.out.success(f"schema already current ({after}) at {where}")
    else:
        st.out.success(f"schema upgraded {before or 'empty'} → {after} at {where}")


@app.command("status")
def status(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show the schema revision in the database and the one this billctl needs."""
    from billctl.services.schema_views import schema_status

    st = state(ctx)
    current, head = schema_status(st.app)
    out = st.output(output)
    doc = {
        "database": redact_url(st.app.config.database.url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    out.rows(["database", "current", "head", "up_to_date"], [tuple(doc.values())], documents=[doc])
    if current != head:
        raise SchemaBehind(
            f"the schema is at {current or 'nothing'}, this billctl needs {head}", hint="run `billctl db upgrade`"
        )
