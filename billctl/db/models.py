"""Tables. Money is integer minor units; decimals that are not money (quantities, unit prices,
tax rates) are stored as exact decimal strings; instants are UTC.

The schema itself is created by the Alembic migrations in ``billctl/migrations``;
tests/integration/test_models_migrations.py checks that these declarations and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no zone)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)  # the tenant_id gateways send
    name: str = Field(max_length=200)
    email: str = Field(default="", max_length=320)
    timezone: str = Field(default="UTC", max_length=64)
    currency: str = Field(default="USD", max_length=3)
    tax_rate: str = Field(default="0", max_length=16)  # percent, exact decimal string
    status: str = Field(default="active", max_length=16)  # active | suspended | closed
    external_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    stripe_customer_id: str | None = Field(default=None, max_length=64)  # issue 4: stored once known


class Plan(SQLModel, table=True):
    __tablename__ = "plan"
    __table_args__ = (sa.UniqueConstraint("code", "version", name="uq_plan_code_version"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, index=True)
    version: int = 1
    currency: str = Field(max_length=3)
    description: str = Field(default="", max_length=500)
    definition: dict = Field(sa_type=sa.JSON)  # billctl.core.plans.plan_to_dict()
    archived: bool = False
    used: bool = False  # an invoice was priced with this version: edits make a new version
    created_at: datetime = _ts()


class PlanAssignment(SQLModel, table=True):
    __tablename__ = "plan_assignment"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    plan_code: str = Field(max_length=64)
    effective_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)


class Discount(SQLModel, table=True):
    __tablename__ = "discount"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    kind: str = Field(max_length=16)  # percent | fixed
    value: str = Field(max_length=32)  # percent, or fixed amount in major units (exact string)
    description: str = Field(default="", max_length=200)
    valid_from: str = Field(max_length=10)  # YYYY-MM-DD, inclusive, tenant time zone
    valid_until: str | None = Field(default=None, max_length=10)  # inclusive; None = open-ended
    created_at: datetime = _ts()


class UsageBucket(SQLModel, table=True):
    __tablename__ = "usage_bucket"
    tenant_id: int = Field(foreign_key="tenant.id", primary_key=True)
    bucket_start: int = Field(primary_key=True, sa_type=sa.BigInteger)  # epoch seconds, UTC
    endpoint: str = Field(primary_key=True, max_length=200)
    units: int = Field(default=0, sa_type=sa.BigInteger)
    events: int = Field(default=0, sa_type=sa.BigInteger)


class SeenEvent(SQLModel, table=True):
    """event_id dedupe: an event is counted only if its key is not here yet.

    The key is a 64-bit BLAKE2b hash of the event_id personalised with the tenant id (so two tenants
    may use the same ids): one fixed-width column, 8 bytes plus the row and index overhead, instead
    of the text. With ~20M ids in the dedupe window, the chance that a new event is mistaken for
    an old one is about 1 in 10^12 per event. ``seen_at`` (epoch seconds) is for pruning: on
    PostgreSQL through a BRIN index (migration 0006; kept exact by ``usage prune``)."""

    __tablename__ = "seen_event"
    __table_args__ = (
        sa.Index(
            "ix_seen_event_seen_at", "seen_at", postgresql_using="brin", postgresql_with={"pages_per_range": 32}
        ).ddl_if(dialect="postgresql"),
    )
    id_hash: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    seen_at: int = Field(sa_type=sa.BigInteger)


class StreamOffset(SQLModel, table=True):
    """The newest stream entry whose events are committed, per stream and consumer group;
    written in the same transaction as the aggregates."""

    __tablename__ = "stream_offset"
    stream: str = Field(primary_key=True, max_length=200)
    group: str = Field(primary_key=True, max_length=100)
    last_id: str = Field(max_length=40)
    events: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = _ts()


class LateUsage(SQLModel, table=True):
    """Usage counted into a period that already had a live invoice: the next invoice of the
    tenant re-prices that period and bills the difference (DESIGN.md invariant 5)."""

    __tablename__ = "late_usage"
    tenant_id: int = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=7)
    events: int = Field(default=0, sa_type=sa.BigInteger)
    units: int = Field(default=0, sa_type=sa.BigInteger)
    last_seen: datetime = _ts()


class Invoice(SQLModel, table=True):
    __tablename__ = "invoice"
    __table_args__ = (
        # Invariant 4: one live invoice per tenant and period (a void one may be re-issued).
        sa.Index(
            "uq_invoice_tenant_period_live",
            "tenant_id",
            "period",
            unique=True,
            sqlite_where=sa.text("status <> 'void'"),
            postgresql_where=sa.text("status <> 'void'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=64, unique=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    period: str = Field(max_length=7, index=True)  # YYYY-MM
    period_start: datetime = Field(sa_type=UTCDateTime)
    period_end: datetime = Field(sa_type=UTCDateTime)
    currency: str = Field(max_length=3)
    subtotal_minor: int = Field(sa_type=sa.BigInteger)
    tax_minor: int = Field(sa_type=sa.BigInteger)
    total_minor: int = Field(sa_type=sa.BigInteger)
    status: str = Field(default="finalized", max_length=24)
    fingerprint: str = Field(max_length=64)
    inputs: dict = Field(sa_type=sa.JSON)  # everything the amount was computed from
    finalized_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)
    void_reason: str | None = Field(default=None, max_length=500)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Stripe (issue 4): each id stored as soon as Stripe returns it; payment outcome from events
    stripe_push_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # a create may have run
    stripe_invoice_id: str | None = Field(default=None, max_length=64, unique=True, index=True)
    stripe_number: str | None = Field(default=None, max_length=64)
    stripe_hosted_url: str | None = Field(default=None, max_length=500)
    stripe_status: str | None = Field(default=None, max_length=24)  # draft open payment_failed paid ...
    stripe_attempt_count: int | None = Field(default=None)
    stripe_next_payment_attempt: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stripe_event_at: int | None = Field(default=None, sa_type=sa.BigInteger)  # newest applied event
    # issue 9: why the last push of this invoice failed (e.g. the Stripe draft differs); None once pushed
    stripe_error: str | None = Field(default=None, max_length=2000)
    hold_reason: str | None = Field(default=None, max_length=500)  # issue 5: why run-monthly held it back
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # released by an operator
    # issue 9: what Stripe reports collected and still due (minor units), from pushes and events
    stripe_amount_paid: int | None = Field(default=None, sa_type=sa.BigInteger)
    stripe_amount_remaining: int | None = Field(default=None, sa_type=sa.BigInteger)


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_line"
    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    position: int
    kind: str = Field(max_length=16)
    description: str = Field(max_length=500)
    quantity: str = Field(max_length=40)
    unit_price: str | None = Field(default=None, max_length=40)
    amount_minor: int = Field(sa_type=sa.BigInteger)
    unrounded: str = Field(max_length=80)
    for_period: str | None = Field(default=None, max_length=7)  # adjustment lines
    detail: dict = Field(sa_type=sa.JSON)
    stripe_item_id: str | None = Field(default=None, max_length=64)  # issue 4


class CreditNote(SQLModel, table=True):
    """A numbered, immutable correction of a finalized invoice (DESIGN.md invariant 11): what it
    credits is in its lines; in Stripe it becomes a credit note on the invoice."""

    __tablename__ = "credit_note"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=64, unique=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    currency: str = Field(max_length=3)
    subtotal_minor: int = Field(sa_type=sa.BigInteger)  # charges before tax credited
    tax_minor: int = Field(sa_type=sa.BigInteger)
    total_minor: int = Field(sa_type=sa.BigInteger)
    mode: str = Field(max_length=16)  # rest | lines | amount
    reason: str = Field(max_length=500)
    settle: str = Field(max_length=16)  # refund | balance | out_of_band: what Stripe does with a paid part
    created_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)
    stripe_push_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # a create may have run
    stripe_credit_note_id: str | None = Field(default=None, max_length=64, unique=True)
    stripe_number: str | None = Field(default=None, max_length=64)
    stripe_status: str | None = Field(default=None, max_length=24)  # issued | void
    stripe_pre_payment_minor: int | None = Field(default=None, sa_type=sa.BigInteger)  # took off what was due
    stripe_post_payment_minor: int | None = Field(default=None, sa_type=sa.BigInteger)  # refunded/credited/out of band


class CreditNoteLine(SQLModel, table=True):
    __tablename__ = "credit_note_line"
    id: int | None = Field(default=None, primary_key=True)
    credit_note_id: int = Field(foreign_key="credit_note.id", index=True)
    position: int
    kind: str = Field(max_length=16)  # line | amount | tax
    invoice_line_position: int | None = Field(default=None)  # the invoice line credited (line, tax)
    description: str = Field(max_length=500)
    amount_minor: int = Field(sa_type=sa.BigInteger)


class Counter(SQLModel, table=True):
    __tablename__ = "counter"
    name: str = Field(primary_key=True, max_length=64)
    value: int = Field(default=0, sa_type=sa.BigInteger)


class StripeCursor(SQLModel, table=True):
    """Where `stripe sync-status` stopped in Stripe's events list (issue 4)."""

    __tablename__ = "stripe_cursor"
    name: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(max_length=64)
    created: int = Field(sa_type=sa.BigInteger)  # the event's Stripe timestamp
    updated_at: datetime = _ts()


class StripeEvent(SQLModel, table=True):
    """Stripe events already applied (by sync-status or the webhook receiver): dedupe by id."""

    __tablename__ = "stripe_event"
    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    created: int = Field(sa_type=sa.BigInteger)
    source: str = Field(max_length=16)  # sync | webhook
    invoice_number: str | None = Field(default=None, max_length=64)
    processed_at: datetime = _ts()


class RunLock(SQLModel, table=True):
    """A lease: the run that holds a name (``run-monthly``) renews ``heartbeat_at`` as it works; a
    lease not renewed for ``monthly.lock_stale_seconds`` (its holder was killed) can be taken over."""

    __tablename__ = "run_lock"
    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)  # run id
    host: str = Field(default="", max_length=200)
    pid: int = Field(default=0)
    grp: str = Field(default="", max_length=200)  # e.g. the Kubernetes Job: its retries may take over at once
    acquired_at: datetime = _ts()
    heartbeat_at: datetime = _ts()


class RunStep(SQLModel, table=True):
    """Checkpoints of run-monthly: one row per (run, step) with its outcome and counts."""

    __tablename__ = "run_step"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    period: str = Field(max_length=7, index=True)
    step: str = Field(max_length=32)
    state: str = Field(max_length=16)  # started | done | skipped | failed | interrupted
    detail: dict = Field(default_factory=dict, sa_type=sa.JSON)
    started_at: datetime = _ts()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts()
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64, index=True)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    reason: str = Field(default="", max_length=500)
    detail: dict = Field(default_factory=dict, sa_type=sa.JSON)


# --- prepaid credits (issue 13): grants, their ledger, purchases -------------------------------------


class CreditPurchase(SQLModel, table=True):
    """A top-up bought through Stripe: a one-off invoice; its grant is made once Stripe reports it
    paid (``grant_id`` set in the same transaction, so it is made exactly once)."""

    __tablename__ = "credit_purchase"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=sa.BigInteger)
    priority: int = Field(default=50)  # of the grant it becomes
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # of the grant it becomes
    reason: str = Field(default="", max_length=500)
    status: str = Field(default="pending", max_length=16)  # pending | paid | void
    created_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stripe_push_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stripe_invoice_id: str | None = Field(default=None, max_length=64, unique=True)
    stripe_status: str | None = Field(default=None, max_length=24)


class CreditGrant(SQLModel, table=True):
    """Credit granted to a tenant, usable over [effective_at, expires_at). Never edited: what happens
    to it (draws, expiry, reversals) is in ``credit_ledger``."""

    __tablename__ = "credit_grant"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=sa.BigInteger)
    kind: str = Field(max_length=16)  # promotional | purchased
    priority: int = Field(default=50)  # 0 is drawn first, 100 last
    effective_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str = Field(max_length=500)
    purchase_id: int | None = Field(default=None, foreign_key="credit_purchase.id", unique=True)
    created_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)


class CreditLedgerEntry(SQLModel, table=True):
    """One immutable entry of a grant's ledger (DESIGN.md invariant 14): grant (+), draw (-), expiry (-)
    or reversal (+), in minor units. ``key`` is unique: a grant is recorded once, an invoice draws on
    a grant once (``draw:<invoice>:<grant>``), a void or credit note gives back once."""

    __tablename__ = "credit_ledger"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=120, unique=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    grant_id: int = Field(foreign_key="credit_grant.id", index=True)
    kind: str = Field(max_length=16)  # grant | draw | expiry | reversal
    amount_minor: int = Field(sa_type=sa.BigInteger)  # signed
    currency: str = Field(max_length=3)
    at: datetime = Field(sa_type=UTCDateTime)  # when it took effect
    invoice_id: int | None = Field(default=None, foreign_key="invoice.id", index=True)
    source: str = Field(default="", max_length=120)  # e.g. void, credit_note:CN-2026-000001, close:2026-10
    created_at: datetime = _ts()
    actor: str = Field(default="", max_length=200)
