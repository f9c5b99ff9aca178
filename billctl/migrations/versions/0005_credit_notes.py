"""Credit notes, and what Stripe reports paid and still due on each invoice (issue 9)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        batch.add_column(sa.Column("stripe_amount_paid", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("stripe_amount_remaining", sa.BigInteger(), nullable=True))
    op.create_table(
        "credit_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("settle", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("stripe_push_started_at", sa.DateTime(), nullable=True),
        sa.Column("stripe_credit_note_id", sa.String(length=64), nullable=True),
        sa.Column("stripe_number", sa.String(length=64), nullable=True),
        sa.Column("stripe_status", sa.String(length=24), nullable=True),
        sa.Column("stripe_pre_payment_minor", sa.BigInteger(), nullable=True),
        sa.Column("stripe_post_payment_minor", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
        sa.UniqueConstraint("stripe_credit_note_id"),
    )
    op.create_index(op.f("ix_credit_note_invoice_id"), "credit_note", ["invoice_id"], unique=False)
    op.create_index(op.f("ix_credit_note_tenant_id"), "credit_note", ["tenant_id"], unique=False)
    op.create_table(
        "credit_note_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credit_note_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("invoice_line_position", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["credit_note_id"], ["credit_note.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_credit_note_line_credit_note_id"), "credit_note_line", ["credit_note_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_credit_note_line_credit_note_id"), table_name="credit_note_line")
    op.drop_table("credit_note_line")
    op.drop_index(op.f("ix_credit_note_tenant_id"), table_name="credit_note")
    op.drop_index(op.f("ix_credit_note_invoice_id"), table_name="credit_note")
    op.drop_table("credit_note")
    with op.batch_alter_table("invoice") as batch:
        batch.drop_column("stripe_amount_remaining")
        batch.drop_column("stripe_amount_paid")
