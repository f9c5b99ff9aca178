"""One tenant's period priced: its inputs assembled from the database, then rated by the pure core.

One function builds a tenant's inputs and prices them (``price_period``), whichever command asks:
preview, finalize, finalize --dry-run and recompute show exactly what a real finalize writes. The
stored document is ``billctl.core.invoice.InvoiceInputs``; pricing is ``billctl.core.rating.rate``.

The finalize path, step by step (each a plain function of the previous step's data):
``load_context`` (plans, assignments, discounts, late periods) → ``assemble_inputs`` →
``rating_segments`` → ``adjustments_for`` (late usage, ``adjustments.py``) → ``rate_draft`` (rating
and tax) →
prepaid credits (``credits``: a ``CreditSource``, below) → ``check_storable`` → ``Priced`` (then
``writes.write_invoices`` stores it, and the credits' draws in the same transaction).

Prepaid credits (issue 13) are drawn on the rated draft (``billctl.core.invoice_credits``): the
caller says where they come from. Finalize draws on the tenant's ledger under its credits lock
(``ledger_credits(lock=True)``), preview and finalize --dry-run read it without writing
(``lock=False``); recompute draws the credits the invoice stored (``stored_credits``), never today's
ledger. So every command shows the credits a real finalize would draw.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from billctl.core import bounds, periods
from billctl.core.credits import Application, credit_lines
from billctl.core.invoice import (
    AdjustmentRecord,
    InputDiscount,
    InputSegment,
    InvoiceInputs,
    PlanRef,
    segment_label,
)
from billctl.core.invoice_credits import InputCredit, credited_draft, input_credits, stored_application
from billctl.core.money import exponent, format_money, from_minor
from billctl.core.periods import Period
from billctl.core.plans import PlanError
from billctl.core.rating import rate
from billctl.core.types import Adjustment, DiscountKind, InvoiceDraft, Segment
from billctl.db.models import Discount as DiscountRow
from billctl.db.models import Invoice, LateUsage, Plan, PlanAssignment, Tenant
from billctl.db.repositories import credits as credits_repo
from billctl.db.uow import UnitOfWork
from billctl.errors import TenantDataError
from billctl.services.credits import PlannedDraws, plan_draws

UsageOf = Callable[[datetime, datetime], dict[str, int]]  # (segment start, end) -> units per endpoint
# (tenant, period, rated draft, inputs) -> the credits drawn on it (None: the tenant has none)
CreditSource = Callable[[Tenant, Period, InvoiceDraft, InvoiceInputs], PlannedDraws | None]


def no_credits(tenant: Tenant, period: Period, draft: InvoiceDraft, inputs: InvoiceInputs) -> None:
    """A ``CreditSource`` that draws nothing."""
    return None


def ledger_credits(uow: UnitOfWork, tenant_ids: Iterable[int] | None, *, lock: bool) -> CreditSource:
    """Credits drawn on the tenants' ledger in ``uow`` (``tenant_ids``: the tenants priced, None for
    all). ``lock`` (finalize): each tenant's credits lock is taken before its ledger is read, so
    what is drawn is still there when the draws are written in the same transaction. Tenants never
    granted credits cost no query."""
    with_grants = credits_repo.tenant_ids_with_grants(uow.session, tenant_ids)

    def source(tenant: Tenant, period: Period, draft: InvoiceDraft, inputs: InvoiceInputs) -> PlannedDraws | None:
        if tenant.id not in with_grants:
            return None
        end = period.bounds(tenant.timezone)[1]
        charges, rate = draft.subtotal, Decimal(inputs.tax_rate)
        return plan_draws(uow, tenant, period_end=end, charges=charges, tax_rate=rate, lock=lock)

    return source


def stored_credits(inputs_doc: Mapping[str, Any]) -> CreditSource:
    """The credits an invoice stored (``inputs["credits"]``), drawn again from what each grant had
    then: ``invoices recompute`` prices a period as it was finalized, not with today's ledger."""
    stored = tuple(InputCredit.from_json(c) for c in inputs_doc.get("credits", []))

    def source(tenant: Tenant, period: Period, draft: InvoiceDraft, inputs: InvoiceInputs) -> PlannedDraws | None:
        if not stored:
            return None
        application, grants = stored_application(
            stored,
            currency=inputs.currency,
            charges=draft.subtotal,
            tax_rate=Decimal(inputs.tax_rate),
            period_end=period.bounds(tenant.timezone)[1],
        )
        return PlannedDraws(application, credit_lines(application, grants), grants)

    return source


@dataclass
class Priced:
    """One tenant's period, priced (or why it was not)."""

    tenant: Tenant
    period: Period
    draft: InvoiceDraft | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # InvoiceInputs.to_json(): the document stored
    fingerprint: str = ""
    skipped: str | None = None  # why no invoice: "no plan", "already finalized", why it failed
    existing: Invoice | None = None  # the live invoice when already finalized
    previous_total_minor: int | None = None  # last period's live invoice, for "change"
    failed: bool = False  # the tenant's data could not be priced or stored (``skipped`` says why)
    open_period: str | None = None  # finalized with --allow-open-period: why the period was not over
    credits: Application | None = None  # prepaid credits drawn (finalize records them with the invoice)

    @property
    def currency(self) -> str:
        return self.tenant.currency


@dataclass
class PricingContext:
    """What pricing needs beyond usage, loaded once for many tenants."""

    plans: dict[str, Plan]  # code -> latest version
    assignments: dict[int, list[PlanAssignment]]
    discounts: dict[int, list[DiscountRow]]
    late: dict[int, set[str]]  # tenant -> periods with late usage
    lookback: int
    tenant_ids: Sequence[int] | None = None  # the tenants loaded (None: all)
    # period -> the tenants (of tenant_ids) with adjustment lines for it on a live invoice, read once
    # per period for all of them instead of once per tenant (see adjustments.adjustments_for)
    adjusted: dict[str, frozenset[int]] = field(default_factory=dict)


def load_context(session: Session, tenant_ids: Sequence[int] | None, lookback: int) -> PricingContext:
    """Plans, plan assignments, discounts and late-usage periods of the tenants (all when None)."""
    plans: dict[str, Plan] = {}
    for plan in session.exec(select(Plan).order_by(col(Plan.code), col(Plan.version))):
        plans[plan.code] = plan
    assign_q = select(PlanAssignment).order_by(col(PlanAssignment.effective_at), col(PlanAssignment.id))
    discount_q = select(DiscountRow).order_by(col(DiscountRow.id))
    late_q = select(LateUsage)
    if tenant_ids is not None:
        assign_q = assign_q.where(col(PlanAssignment.tenant_id).in_(tenant_ids))
        discount_q = discount_q.where(col(DiscountRow.tenant_id).in_(tenant_ids))
        late_q = late_q.where(col(LateUsage.tenant_id).in_(tenant_ids))
    assignments: dict[int, list[PlanAssignment]] = defaultdict(list)
    for assignment in session.exec(assign_q):
        assignments[assignment.tenant_id].append(assignment)
    discounts: dict[int, list[DiscountRow]] = defaultdict(list)
    for discount in session.exec(discount_q):
        discounts[discount.tenant_id].append(discount)
    late: dict[int, set[str]] = defaultdict(set)
    for row in session.exec(late_q):
        late[row.tenant_id].add(row.period)
    return PricingContext(plans, assignments, discounts, late, lookback, tenant_ids)


def plan_segments(
    ctx: PricingContext, tenant: Tenant, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """(segment start, segment end, plan code) covering the part of [start, end) that has a plan."""
    history = ctx.assignments.get(_id(tenant), [])
    current: str | None = None
    cuts: list[tuple[datetime, str]] = []
    for row in history:
        if row.effective_at <= start:
            current = row.plan_code
        elif row.effective_at < end:
            cuts.append((row.effective_at, row.plan_code))
    pieces: list[tuple[datetime, datetime, str]] = []
    cursor, code = start, current
    for at, new_code in cuts:
        if code is not None and at > cursor:
            pieces.append((cursor, at, code))
        cursor, code = at, new_code
    if code is not None and end > cursor:
        pieces.append((cursor, end, code))
    # merge neighbours under the same plan (an assignment repeating the current plan)
    merged: list[tuple[datetime, datetime, str]] = []
    for piece in pieces:
        if merged and merged[-1][2] == piece[2] and merged[-1][1] == piece[0]:
            merged[-1] = (merged[-1][0], piece[1], piece[2])
        else:
            merged.append(piece)
    return merged


def _id(row: Tenant | Plan) -> int:
    assert row.id is not None  # rows read from the database
    return row.id


def _discounts_for(ctx: PricingContext, tenant: Tenant, period: Period) -> list[DiscountRow]:
    first = f"{period}-01"
    last = f"{period}-31"  # ISO dates compare as text; no month has a day after 31
    return [
        d
        for d in ctx.discounts.get(_id(tenant), [])
        if d.valid_from <= last and (d.valid_until is None or d.valid_until >= first)
    ]


def assemble_inputs(ctx: PricingContext, tenant: Tenant, period: Period, usage_of: UsageOf) -> InvoiceInputs | None:
    """The inputs of ``tenant``'s ``period`` (adjustments still empty); None when no plan covers it."""
    start, end = period.bounds(tenant.timezone)
    pieces = plan_segments(ctx, tenant, start, end)
    if not pieces:
        return None
    segments = []
    for seg_start, seg_end, code in pieces:
        plan = ctx.plans[code]
        segments.append(
            InputSegment(
                start=seg_start,
                end=seg_end,
                fraction=periods.segment_fraction(seg_start, seg_end, start, end),
                plan=PlanRef(plan.id, plan.code, plan.version, plan.definition),
                usage=dict(sorted(usage_of(seg_start, seg_end).items())),
            )
        )
    discounts = tuple(
        InputDiscount(
            id=d.id,
            kind=cast(DiscountKind, d.kind),  # validated ("percent" or "fixed") when the discount was created
            value=Decimal(d.value),
            description=d.description or (f"Discount {d.value} %" if d.kind == "percent" else "Discount"),
        )
        for d in _discounts_for(ctx, tenant, period)
    )
    return InvoiceInputs(
        tenant=tenant.key,
        period=str(period),
        timezone=tenant.timezone,
        currency=tenant.currency,
        tax_rate=tenant.tax_rate,
        segments=tuple(segments),
        discounts=discounts,
    )


def rating_segments(inputs: InvoiceInputs) -> list[Segment]:
    """Like ``core.invoice.rating_segments``, but a stored plan that no longer validates fails this
    tenant only, naming the plan and how to fix it."""
    segments = []
    for seg in inputs.segments:
        try:
            spec = seg.plan.spec()
        except PlanError as exc:  # stored before today's bounds, or edited by hand: its tenants fail, no one else
            raise TenantDataError(
                f"plan '{seg.plan.code}' v{seg.plan.version} does not pass validation: {exc}",
                hint=f"fix it with `billctl plans update --file ...` (see `billctl plans show {seg.plan.code}`)",
            ) from None
        label = segment_label(seg.plan.code, seg.start, seg.end, inputs.timezone)
        segments.append(Segment(seg.start, seg.end, spec, seg.usage, seg.fraction, label))
    return segments


def rate_draft(segments: list[Segment], inputs: InvoiceInputs, adjustments: Sequence[Adjustment]) -> InvoiceDraft:
    """Rating and tax: the draft invoice of ``inputs`` (its ``segments`` as rating takes them) with
    ``adjustments`` as extra lines."""
    try:
        return rate(
            currency=inputs.currency,
            segments=segments,
            discounts=[d.as_rating() for d in inputs.discounts],
            tax_rate=Decimal(inputs.tax_rate),
            adjustments=adjustments,
        )
    except ArithmeticError:  # beyond Decimal's 28 digits: far outside the bounds a plan may hold
        raise TenantDataError(
            f"its charges are too large to compute exactly ({', '.join(sorted({s.plan.code for s in segments}))})",
            hint="check the plan's prices and the usage; see docs/reference/bounds.md",
        ) from None


def price_period(
    conn: Connection,
    ctx: PricingContext,
    tenant: Tenant,
    period: Period,
    usage_of: UsageOf,
    *,
    credits: CreditSource,
    adjustments: tuple[list[Adjustment], list[AdjustmentRecord]] | None = None,
) -> Priced:
    """Price one tenant's period. ``credits`` says where prepaid credits come from (module
    docstring). ``adjustments`` (lines and their input records) replaces the late-usage adjustments
    computed now: ``invoices recompute`` reuses an invoice's own."""
    from billctl.services.invoices.adjustments import adjustments_for

    inputs = assemble_inputs(ctx, tenant, period, usage_of)
    if inputs is None:
        return Priced(tenant=tenant, period=period, skipped="no plan assigned for this period")
    segments = rating_segments(inputs)  # a plan that no longer validates fails here, before anything else
    lines, records = adjustments_for(conn, ctx, tenant, period) if adjustments is None else adjustments
    inputs = replace(inputs, adjustments=tuple(records))
    draft = rate_draft(segments, inputs, lines)
    drawn: Application | None = None
    planned = credits(tenant, period, draft, inputs)
    if planned is not None and planned.application.draws:
        drawn = planned.application
        draft = credited_draft(draft, drawn, planned.lines)
        inputs = replace(inputs, credits=input_credits(drawn, planned.grants))
    check_storable(draft, tenant)
    doc = inputs.to_json()
    return Priced(tenant=tenant, period=period, draft=draft, inputs=doc, fingerprint=inputs.fingerprint, credits=drawn)


def check_storable(draft: InvoiceDraft, tenant: Tenant) -> None:
    """Every amount of ``tenant``'s draft fits the BigInteger minor-unit columns (invariant 13); the bounds on
    plans leave room for a year of usage, so only usage far beyond that gets here."""
    currency = draft.currency
    limit = bounds.MAX_STORED_MINOR
    for label, amount in [("total", draft.total), ("subtotal", draft.subtotal)] + [
        (line.kind, line.amount) for line in draft.lines
    ]:
        if abs(amount.scaleb(exponent(currency))) > limit:
            raise TenantDataError(
                f"its {label} {format_money(amount, currency)} does not fit the invoice storage "
                f"(at most {format_money(from_minor(limit, currency), currency)})",
                hint="check the plan's prices and the usage; see docs/reference/bounds.md",
            )
