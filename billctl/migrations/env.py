"""Alembic environment. billctl drives Alembic programmatically (billctl.db.engine):
the connection to migrate is passed in ``config.attributes['connection']``."""

from alembic import context
from sqlmodel import SQLModel

from billctl.db import models  # noqa: F401  (registers the tables)

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch mode for ALTER
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
