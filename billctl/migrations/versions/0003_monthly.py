"""run-monthly: the run lock, step checkpoints, held invoices (issue 5)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        batch.add_column(sa.Column("hold_reason", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("released_at", sa.DateTime(), nullable=True))
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("grp", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "run_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_run_step_run_id"), "run_step", ["run_id"])
    op.create_index(op.f("ix_run_step_period"), "run_step", ["period"])


def downgrade() -> None:
    op.drop_index(op.f("ix_run_step_period"), table_name="run_step")
    op.drop_index(op.f("ix_run_step_run_id"), table_name="run_step")
    op.drop_table("run_step")
    op.drop_table("run_lock")
    with op.batch_alter_table("invoice") as batch:
        batch.drop_column("released_at")
        batch.drop_column("hold_reason")
