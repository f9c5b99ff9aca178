"""Stripe: customer and invoice ids, payment outcome, events cursor, applied events (issue 4)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("stripe_customer_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("invoice") as batch:
        batch.add_column(sa.Column("stripe_push_started_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("stripe_invoice_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("stripe_number", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("stripe_hosted_url", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("stripe_status", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("stripe_attempt_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stripe_next_payment_attempt", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("stripe_event_at", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_invoice_stripe_invoice_id"), "invoice", ["stripe_invoice_id"], unique=True)
    with op.batch_alter_table("invoice_line") as batch:
        batch.add_column(sa.Column("stripe_item_id", sa.String(length=64), nullable=True))
    op.create_table(
        "stripe_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "stripe_event",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("stripe_event")
    op.drop_table("stripe_cursor")
    with op.batch_alter_table("invoice_line") as batch:
        batch.drop_column("stripe_item_id")
    op.drop_index(op.f("ix_invoice_stripe_invoice_id"), table_name="invoice")
    with op.batch_alter_table("invoice") as batch:
        for name in (
            "stripe_event_at",
            "stripe_next_payment_attempt",
            "stripe_attempt_count",
            "stripe_status",
            "stripe_hosted_url",
            "stripe_number",
            "stripe_invoice_id",
            "stripe_push_started_at",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("stripe_customer_id")
