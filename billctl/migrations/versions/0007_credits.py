"""Prepaid credits: grants, their ledger and purchases (issue 13)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

Money is BigInteger minor units (signed in the ledger). ``credit_ledger.key`` is unique, so an
invoice's draw on a grant, a grant itself, a void's or a credit note's return are each written once,
whatever is re-run after a crash.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_purchase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("stripe_push_started_at", sa.DateTime(), nullable=True),
        sa.Column("stripe_invoice_id", sa.String(length=64), nullable=True),
        sa.Column("stripe_status", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_invoice_id"),
    )
    op.create_index(op.f("ix_credit_purchase_tenant_id"), "credit_purchase", ["tenant_id"], unique=False)
    op.create_table(
        "credit_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["purchase_id"], ["credit_purchase.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("purchase_id"),
    )
    op.create_index(op.f("ix_credit_grant_tenant_id"), "credit_grant", ["tenant_id"], unique=False)
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["credit_grant.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(op.f("ix_credit_ledger_grant_id"), "credit_ledger", ["grant_id"], unique=False)
    op.create_index(op.f("ix_credit_ledger_invoice_id"), "credit_ledger", ["invoice_id"], unique=False)
    op.create_index(op.f("ix_credit_ledger_tenant_id"), "credit_ledger", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_credit_ledger_tenant_id"), table_name="credit_ledger")
    op.drop_index(op.f("ix_credit_ledger_invoice_id"), table_name="credit_ledger")
    op.drop_index(op.f("ix_credit_ledger_grant_id"), table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_index(op.f("ix_credit_grant_tenant_id"), table_name="credit_grant")
    op.drop_table("credit_grant")
    op.drop_index(op.f("ix_credit_purchase_tenant_id"), table_name="credit_purchase")
    op.drop_table("credit_purchase")
