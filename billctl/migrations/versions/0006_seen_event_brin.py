"""seen_event: a BRIN index on seen_at (PostgreSQL), so pruning reads only the old block ranges (issue 10)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Ids are appended in seen_at order, so a BRIN index (the min and max seen_at of every 32 pages) is
tiny and nearly free to keep up on ingest, unlike a B-tree. `usage prune` keeps its ranges exact
after freed pages are reused (see ``prune_seen``). SQLite keeps no index: its full scan is cheap
next to the deletes themselves, and a B-tree would slow every ingest (docs/reference/benchmarks.md).
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_seen_event_seen_at",
            "seen_event",
            ["seen_at"],
            postgresql_using="brin",
            postgresql_with={"pages_per_range": 32},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_seen_event_seen_at", table_name="seen_event")
