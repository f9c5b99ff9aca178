"""Pricing periods into invoices: preview (dry run), finalize (immutable, numbered), void.

One function builds a tenant's pricing inputs (``_inputs``) and one prices them (the pure
``billctl.core.rating.rate``), whichever command asks: preview, finalize and finalize
--dry-run show exactly what a real finalize writes. Late usage for finalized periods becomes
adjustment lines on the tenant's next invoice (the difference between what the period is worth
now and what was billed), so history is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from billctl.core import bounds, periods
from billctl.core.bounds import quote
from billctl.core.money import exponent, format_money, from_minor, quantize, to_minor
from billctl.core.periods import Period
from billctl.core.plans import PlanError, parse_plan
from billctl.core.rating import rate
from billctl.core.types import Adjustment, Discount, InvoiceDraft, Segment
from billctl.core.types import Plan as PlanSpec
from billctl.db.models import Discount as DiscountRow
from billctl.db.models import Invoice, InvoiceLine, LateUsage, Plan, PlanAssignment, Tenant, UsageBucket
from billctl.errors import BadInput, BillctlError, NotFound, TenantDataError
from billctl.services.context import App, audit
from billctl.services.usage import lock_tenants, usage_totals

ROUNDING_RULE = "each line rounded once, half-up, to the currency's minor unit; tax on the subtotal, rounded once"
INPUTS_SCHEMA = 1


def parse_period(text: str) -> Period:
    try:
        return Period.parse(text)
    except periods.PeriodError as exc:
        raise BadInput(f"--period: {exc}") from None


@dataclass
class Priced:
    """One tenant's period, priced (or why it was not)."""

    tenant: Tenant
    period: Period
    draft: InvoiceDraft | None = None
    inputs: dict = field(default_factory=dict)
    fingerprint: str = ""
    skipped: str | None = None  # why no invoice: "no plan", "already finalized", why it failed
    existing: Invoice | None = None  # the live invoice when already finalized
    previous_total_minor: int | None = None  # last period's live invoice, for "change"
    failed: bool = False  # the tenant's data could not be priced or stored (``skipped`` says why)
    open_period: str | None = None  # finalized with --allow-open-period: why the period was not over

    @property
    def currency(self) -> str:
        return self.tenant.currency


# ---------------------------------------------------------------- inputs


@dataclass
class _Context:
    """What pricing needs beyond usage, loaded once for many tenants."""

    plans: dict[str, Plan]  # code -> latest version
    assignments: dict[int, list[PlanAssignment]]
    discounts: dict[int, list[DiscountRow]]
    late: dict[int, set[str]]  # tenant -> periods with late usage
    lookback: int


def _load_context(session: Session, tenant_ids: Sequence[int] | None, lookback: int) -> _Context:
    def scoped(query, column):  # type: ignore[no-untyped-def]
        return query if tenant_ids is None else query.where(column.in_(tenant_ids))

    plans: dict[str, Plan] = {}
    for row in session.exec(select(Plan).order_by(Plan.code, Plan.version)):
        plans[row.code] = row
    assignments: dict[int, list[PlanAssignment]] = defaultdict(list)
    for row in session.exec(
        scoped(select(PlanAssignment), PlanAssignment.tenant_id).order_by(
            PlanAssignment.effective_at, PlanAssignment.id
        )
    ):
        assignments[row.tenant_id].append(row)
    discounts: dict[int, list[DiscountRow]] = defaultdict(list)
    for row in session.exec(scoped(select(DiscountRow), DiscountRow.tenant_id).order_by(DiscountRow.id)):
        discounts[row.tenant_id].append(row)
    late: dict[int, set[str]] = defaultdict(set)
    for row in session.exec(scoped(select(LateUsage), LateUsage.tenant_id)):
        late[row.tenant_id].add(row.period)
    return _Context(plans, assignments, discounts, late, lookback)


def _segments_plan(
    ctx: _Context, tenant: Tenant, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """(segment start, segment end, plan code) covering the part of [start, end) that has a plan."""
    history = ctx.assignments.get(tenant.id, [])
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


def _spec(row: Plan) -> PlanSpec:
    try:
        spec = parse_plan(row.definition)
    except PlanError as exc:  # stored before today's bounds, or edited by hand: its tenants fail, no one else
        raise TenantDataError(
            f"plan '{row.code}' v{row.version} does not pass validation: {exc}",
            hint=f"fix it with `billctl plans update --file ...` (see `billctl plans show {row.code}`)",
        ) from None
    return PlanSpec(**{**spec.__dict__, "version": row.version})


def _discounts_for(ctx: _Context, tenant: Tenant, period: Period) -> list[DiscountRow]:
    first = f"{period}-01"
    last = f"{period}-31"  # ISO dates compare as text; no month has a day after 31
    return [
        d
        for d in ctx.discounts.get(tenant.id, [])
        if d.valid_from <= last and (d.valid_until is None or d.valid_until >= first)
    ]


def _segment_json(start: datetime, end: datetime, fraction: Decimal, plan: Plan, usage: dict[str, int]) -> dict:
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "fraction": str(fraction),
        "plan": {"id": plan.id, "code": plan.code, "version": plan.version, "definition": plan.definition},
        "usage": dict(sorted(usage.items())),
    }


def _rate_inputs(inputs: dict, adjustments: Sequence[Adjustment] = (), *, with_tax: bool = True) -> InvoiceDraft:
    """Price a stored inputs document (the same function finalize used)."""
    segments = []
    for seg in inputs["segments"]:
        spec = parse_plan(seg["plan"]["definition"])
        spec = PlanSpec(**{**spec.__dict__, "version": seg["plan"]["version"]})
        start, end = datetime.fromisoformat(seg["start"]), datetime.fromisoformat(seg["end"])
        segments.append(
            Segment(
                start=start,
                end=end,
                plan=spec,
                usage=seg["usage"],
                fraction=Decimal(seg["fraction"]),
                label=segment_label(spec.code, start, end, inputs["timezone"]),
            )
        )
    discounts = [
        Discount(kind=d["kind"], value=Decimal(d["value"]), description=d["description"], id=d["id"])
        for d in inputs["discounts"]
    ]
    return rate(
        currency=inputs["currency"],
        segments=segments,
        discounts=discounts,
        tax_rate=Decimal(inputs["tax_rate"]) if with_tax else Decimal(0),
        adjustments=adjustments,
    )


def _adjustments(
    conn: Connection, ctx: _Context, tenant: Tenant, period: Period
) -> tuple[list[Adjustment], list[dict]]:
    """Adjustment lines for ``period``'s invoice (DESIGN.md invariants 5 and 11).

    For each earlier finalized period with late usage: what the period is worth now (priced with
    its own invoice's inputs) less what the live invoices bill for it (its own invoice, and the
    adjustment lines for it on any live invoice). And when ``period`` itself is billed again (its
    invoice was voided), a line taking off what live invoices already billed for it as
    adjustments. Working from what *live* invoices bill, never from what was once billed, is what
    keeps a unit from being billed twice whatever is voided and finalized again, in any order."""
    adjustments, records = [], []
    units, charged, numbers = _billed_for(conn, tenant.id, str(period), None)
    if numbers:
        amount = -from_minor(charged, tenant.currency)
        record = {"for_period": str(period), "already_billed_on": numbers, "units": -units, "amount": str(amount)}
        adjustments.append(
            Adjustment(
                for_period=str(period),
                amount=amount,
                description=f"Already billed for {period} as adjustments on {', '.join(numbers)}: {-units:+,} units",
                detail=record,
            )
        )
        records.append(record)
    late_periods = sorted(p for p in ctx.late.get(tenant.id, ()) if p < str(period))
    if not late_periods:
        return adjustments, records
    oldest = period
    for _ in range(ctx.lookback):
        oldest = oldest.previous()
    late_periods = [p for p in late_periods if p >= str(oldest)]
    invoices = {
        row.period: row
        for row in conn.execute(
            sa.select(Invoice.__table__).where(
                Invoice.tenant_id == tenant.id, Invoice.status != "void", Invoice.period.in_(late_periods)
            )
        )
    }
    for for_period in late_periods:
        invoice = invoices.get(for_period)
        if invoice is None:
            continue
        billed_units, billed_minor, _ = _billed_for(conn, tenant.id, for_period, invoice)
        now_usage = [
            usage_totals(conn, tenant.id, datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
            for s in invoice.inputs["segments"]
        ]
        now_inputs = {
            **invoice.inputs,
            "segments": [{**s, "usage": u} for s, u in zip(invoice.inputs["segments"], now_usage, strict=True)],
        }
        before = from_minor(billed_minor, invoice.currency)
        after = _rate_inputs(now_inputs, with_tax=False).subtotal
        delta_units = sum(sum(u.values()) for u in now_usage) - billed_units
        if delta_units == 0 and after == before:
            continue
        description = f"Adjustment for {for_period} ({invoice.number}): {delta_units:+,} units of late usage"
        record = {
            "for_period": for_period,
            "invoice": invoice.number,
            "usage": now_usage,
            "units": delta_units,
            "billed_units": billed_units,
            "charges_before": str(before),
            "charges_now": str(after),
        }
        adjustments.append(
            Adjustment(for_period=for_period, amount=after - before, description=description, detail=record)
        )
        records.append({**record, "amount": str(after - before)})
    return adjustments, records


def adjustment_units(detail: dict) -> int:
    """The unit change an adjustment line billed (older lines kept usage snapshots only)."""
    if "units" in detail:
        return int(detail["units"])
    return sum(sum(u.values()) for u in detail.get("usage", [])) - sum(
        sum(u.values()) for u in detail.get("billed_usage", [])
    )


def _billed_for(
    conn: Connection, tenant_id: int, period: str, invoice: sa.Row | None
) -> tuple[int, int, list[str]]:
    """(units, pre-tax minor units, numbers of the other invoices involved) that live invoices bill
    for ``period``: ``invoice`` (its live invoice, if any: its usage and its lines but tax and
    adjustments for other periods) plus every adjustment line for ``period`` on a live invoice."""
    lines, inv = InvoiceLine.__table__, Invoice.__table__
    rows = conn.execute(
        sa.select(inv.c.id, inv.c.number, lines.c.kind, lines.c.for_period, lines.c.amount_minor, lines.c.detail)
        .join(inv, inv.c.id == lines.c.invoice_id)
        .where(
            inv.c.tenant_id == tenant_id,
            inv.c.status != "void",
            sa.or_(lines.c.for_period == period, inv.c.id == (invoice.id if invoice is not None else -1)),
        )
        .order_by(inv.c.id, lines.c.position)
    )
    units = sum(sum(s["usage"].values()) for s in invoice.inputs["segments"]) if invoice is not None else 0
    charged, numbers = 0, []
    for invoice_id, number, kind, for_period, amount, detail in rows:
        if kind == "tax" or (kind == "adjustment" and for_period != period):
            continue
        charged += amount
        if kind == "adjustment":
            units += adjustment_units(detail)
            if (invoice is None or invoice_id != invoice.id) and number not in numbers:
                numbers.append(number)
    return units, charged, numbers


def _price(
    conn: Connection,
    ctx: _Context,
    tenant: Tenant,
    period: Period,
    usage_of: Callable[[datetime, datetime], dict[str, int]],
    *,
    adjustments: tuple[list[Adjustment], list[dict]] | None = None,
) -> Priced:
    """Price one tenant's period. ``adjustments`` (lines and their input records) replaces the
    late-usage adjustments computed now: ``invoices recompute`` reuses an invoice's own."""
    start, end = period.bounds(tenant.timezone)
    pieces = _segments_plan(ctx, tenant, start, end)
    if not pieces:
        return Priced(tenant=tenant, period=period, skipped="no plan assigned for this period")
    segments, segment_docs = [], []
    for seg_start, seg_end, code in pieces:
        plan = ctx.plans[code]
        fraction = periods.segment_fraction(seg_start, seg_end, start, end)
        usage = usage_of(seg_start, seg_end)
        segments.append(
            Segment(
                start=seg_start,
                end=seg_end,
                plan=_spec(plan),
                usage=usage,
                fraction=fraction,
                label=segment_label(code, seg_start, seg_end, tenant.timezone),
            )
        )
        segment_docs.append(_segment_json(seg_start, seg_end, fraction, plan, usage))
    discount_rows = _discounts_for(ctx, tenant, period)
    discounts = [
        Discount(
            kind=d.kind,
            value=Decimal(d.value),
            description=d.description or (f"Discount {d.value} %" if d.kind == "percent" else "Discount"),
            id=d.id,
        )
        for d in discount_rows
    ]
    adjustments, adjustment_docs = _adjustments(conn, ctx, tenant, period) if adjustments is None else adjustments
    inputs = {
        "schema": INPUTS_SCHEMA,
        "tenant": tenant.key,
        "period": str(period),
        "timezone": tenant.timezone,
        "currency": tenant.currency,
        "tax_rate": tenant.tax_rate,
        "rounding": ROUNDING_RULE,
        "segments": segment_docs,
        "discounts": [
            {"id": d.id, "kind": d.kind, "value": str(d.value), "description": d.description} for d in discounts
        ],
        "adjustments": adjustment_docs,
    }
    try:
        draft = rate(
            currency=tenant.currency,
            segments=segments,
            discounts=discounts,
            tax_rate=Decimal(tenant.tax_rate),
            adjustments=adjustments,
        )
    except ArithmeticError:  # beyond Decimal's 28 digits: far outside the bounds a plan may hold
        raise TenantDataError(
            f"its charges are too large to compute exactly ({', '.join(sorted({s.plan.code for s in segments}))})",
            hint="check the plan's prices and the usage; see docs/reference/bounds.md",
        ) from None
    _check_storable(draft, tenant)
    return Priced(tenant=tenant, period=period, draft=draft, inputs=inputs, fingerprint=fingerprint(inputs))


def _check_storable(draft: InvoiceDraft, tenant: Tenant) -> None:
    """Every amount of the draft fits the BigInteger minor-unit columns (invariant 13); the bounds on
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


def segment_label(code: str, start: datetime, end: datetime, tz: str) -> str:
    """Local, inclusive dates: a segment [Oct 16 00:00, Nov 1 00:00) reads "2026-10-16–2026-10-31"."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    last = (end - timedelta(seconds=1)).astimezone(zone).date()
    return f"{code}, {first}–{last}"


def fingerprint(inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------- preview


def billed_tenants(session: Session, tenant_key: str | None) -> list[Tenant]:
    """The tenant named ``tenant_key`` (NotFound if none), or every active tenant, in id order."""
    if tenant_key:
        tenant = session.exec(select(Tenant).where(Tenant.key == tenant_key)).first()
        if tenant is None:
            raise NotFound(f"unknown tenant {quote(tenant_key)}", hint="see `billctl tenants list`")
        return [tenant]
    return list(session.exec(select(Tenant).where(Tenant.status == "active").order_by(Tenant.id)))


def iter_preview(app: App, period: Period, tenant_key: str | None = None) -> Iterator[Priced]:
    """Price every active tenant (or one) for ``period`` without writing anything.

    Usage is read with one streamed ``GROUP BY`` per distinct time zone, merged with the
    tenant list in id order, so memory does not grow with the number of tenants."""
    with Session(app.engine) as session:
        tenants = billed_tenants(session, tenant_key)
        ids = [t.id for t in tenants] if tenant_key else None
        ctx = _load_context(session, ids, app.config["billing.adjustment_lookback_months"])
        live = _live_invoices(session, period, ids)
        previous = {row.tenant_id: row.total_minor for row in _live_invoices(session, period.previous(), ids).values()}
        conn = session.connection()
        by_tz: dict[str, list[Tenant]] = defaultdict(list)
        for tenant in tenants:
            by_tz[tenant.timezone].append(tenant)
        for tz, group in by_tz.items():
            start, end = period.bounds(tz)
            rows = _bulk_usage(conn, start, end, [t.id for t in group] if (tenant_key or len(by_tz) > 1) else None)
            for tenant, usage in _merge(group, rows):
                if tenant.id in live:
                    yield Priced(
                        tenant=tenant,
                        period=period,
                        skipped="already finalized",
                        existing=live[tenant.id],
                        previous_total_minor=previous.get(tenant.id),
                    )
                    continue

                def usage_of(
                    s: datetime, e: datetime, tenant: Tenant = tenant, usage: dict = usage, whole: tuple = (start, end)
                ) -> dict:
                    return usage if (s, e) == whole else usage_totals(conn, tenant.id, s, e)

                try:
                    priced = _price(conn, ctx, tenant, period, usage_of)
                except Exception as exc:  # one tenant's data cannot be priced: show it, go on
                    if _stops_the_run(app, exc):
                        raise
                    priced = _failed(tenant, period, exc).priced
                priced.previous_total_minor = previous.get(tenant.id)
                yield priced


def _bulk_usage(conn: Connection, start: datetime, end: datetime, tenant_ids: list[int] | None):  # type: ignore[no-untyped-def]
    table = UsageBucket.__table__
    query = (
        sa.select(table.c.tenant_id, table.c.endpoint, sa.func.sum(table.c.units))
        .where(table.c.bucket_start >= int(start.timestamp()), table.c.bucket_start < int(end.timestamp()))
        .group_by(table.c.tenant_id, table.c.endpoint)
        .order_by(table.c.tenant_id)
    )
    if tenant_ids is not None:
        query = query.where(table.c.tenant_id.in_(tenant_ids))
    return conn.execution_options(stream_results=True, yield_per=10_000).execute(query)


def _merge(tenants: list[Tenant], rows) -> Iterator[tuple[Tenant, dict[str, int]]]:  # type: ignore[no-untyped-def]
    """Join tenants (ascending id) with usage rows (ascending tenant_id), one tenant at a time."""
    pending: tuple[int, str, int] | None = None
    iterator = iter(rows)
    for tenant in tenants:
        usage: dict[str, int] = {}
        while True:
            if pending is None:
                row = next(iterator, None)
                if row is None:
                    break
                pending = (row[0], row[1], int(row[2]))
            if pending[0] < tenant.id:
                pending = None  # a tenant outside this group (other zone or status)
                continue
            if pending[0] > tenant.id:
                break
            usage[pending[1]] = pending[2]
            pending = None
        yield tenant, usage


def _live_invoices(session: Session, period: Period, tenant_ids: Sequence[int] | None) -> dict[int, Invoice]:
    query = select(Invoice).where(Invoice.period == str(period), Invoice.status != "void")
    if tenant_ids is not None:
        query = query.where(Invoice.tenant_id.in_(tenant_ids))
    return {row.tenant_id: row for row in session.exec(query)}


# ---------------------------------------------------------------- finalize


@dataclass
class FinalizeResult:
    priced: Priced
    invoice: Invoice | None = None  # written (or, in a dry run, what would be written)
    outcome: str = ""  # finalized | would finalize | already finalized | skipped | not over | failed


CHUNK = 100  # tenants finalized per transaction


class OpenPeriod(BadInput):
    """The period is not over for any of the tenants asked for (invariant 12): nothing to finalize."""


OPEN_PERIOD_HINT = (
    "only finished months are billed: run it again once the month has ended, or pass --allow-open-period "
    "to bill a partial month on purpose (recorded in the audit log)"
)


def open_periods(period: Period, tenants: Sequence[Tenant], now: datetime, *, allow: bool = False) -> dict[int, str]:
    """Tenant id -> why its ``period`` is not over yet at ``now`` (``periods.open_period_reason``,
    the rule of invariant 12). Unless ``allow``, raises OpenPeriod when that is every tenant of a
    non-empty list."""
    refused = {t.id: why for t in tenants if (why := periods.open_period_reason(period, t.timezone, now))}
    if not allow and tenants and len(refused) == len(tenants):
        who = f"tenant '{tenants[0].key}'" if len(tenants) == 1 else f"any of the {len(tenants)} tenants"
        first = min(tenants, key=lambda t: period.bounds(t.timezone)[1])
        earliest = "" if len(tenants) == 1 else ", the earliest"
        raise OpenPeriod(
            f"{period} is not over yet for {who} (it ends {period.bounds(first.timezone)[1]:%Y-%m-%d %H:%M}Z "
            f"in {first.timezone}{earliest})",
            hint=OPEN_PERIOD_HINT,
        )
    return refused


def require_period_over(app: App, period: Period, tenant_key: str | None = None) -> dict[int, str]:
    """``open_periods`` for the tenants a finalize of ``tenant_key`` (or of every active tenant)
    would bill, now: commands check it before asking anything or taking a lock."""
    with Session(app.engine) as session:
        return open_periods(period, billed_tenants(session, tenant_key), app.now())


def finalize(
    app: App,
    period: Period,
    tenant_key: str | None = None,
    *,
    dry_run: bool = False,
    on_result: Callable[[FinalizeResult], None] | None = None,
    stop: Callable[[], bool] | None = None,
    allow_open_period: bool = False,
) -> list[FinalizeResult]:
    """Finalize ``period``: one immutable, numbered invoice per tenant.

    Tenants go in chunks of ``CHUNK`` per transaction (locked, priced, then written; one commit per
    chunk instead of per tenant: 10,000 tenants in well under a minute). If a chunk cannot be
    written it is redone tenant by tenant, each in its own transaction, so one bad tenant never
    holds back the others: a tenant whose data cannot be priced or stored (a plan beyond the bounds,
    an amount that does not fit) comes out ``failed`` with the reason, and the others are finalized.
    Only a database that is down (or a lost lock) stops the run. Safe to re-run: a tenant with a live
    invoice is reported as already finalized; the unique index makes a concurrent second writer fail
    instead of writing a second invoice. ``stop`` is asked before each tenant (SIGTERM: stop after the
    tenant in progress; what is done is committed).

    Only finished months are billed (invariant 12): a tenant whose period has not ended yet in its
    own time zone comes out ``not over`` (a close at midnight UTC must not finalize a tenant in Los
    Angeles whose month still has hours to go), and OpenPeriod is raised when that is every tenant.
    ``allow_open_period`` bills them anyway; each such invoice's audit record says so."""
    with Session(app.engine) as session:
        tenants = billed_tenants(session, tenant_key)
    results: list[FinalizeResult] = []

    def emit(result: FinalizeResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    opened = open_periods(period, tenants, app.now(), allow=allow_open_period)
    todo: list[int] = []
    for tenant in tenants:
        if tenant.id in opened and not allow_open_period:
            emit(FinalizeResult(Priced(tenant=tenant, period=period, skipped=opened[tenant.id]), None, "not over"))
        else:
            todo.append(tenant.id)
    for i in range(0, len(todo), CHUNK):
        ids = todo[i : i + CHUNK]
        try:
            done = _finalize_chunk(app, period, ids, dry_run=dry_run, stop=stop, opened=opened)
        except Exception as exc:  # redo one by one: the failure is one tenant's, or each says it is not
            if _stops_the_run(app, exc):
                raise
            done = []
            for tenant_id in ids:
                if stop is not None and stop():
                    break
                done.append(_finalize_one(app, period, tenant_id, dry_run=dry_run, opened=opened))
        for result in done:
            emit(result)
        if len(done) < len(ids):  # stopped
            break
    return results


def _stops_the_run(app: App, exc: Exception) -> bool:
    """A failure no tenant can get past (the database is down or read-only, the run lost its lock),
    as opposed to one tenant's data that cannot be billed."""
    from billctl.db.engine import database_error
    from billctl.errors import DependencyDown, LockHeld

    if isinstance(exc, DependencyDown | LockHeld):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and database_error(exc, app.config["database.url"]) is not None


def _failed(tenant: Tenant, period: Period, exc: Exception) -> FinalizeResult:
    """The result of a tenant whose data could not be billed, with the reason in one line."""
    if isinstance(exc, BillctlError | ValueError):  # TenantDataError, a stored plan that no longer validates
        reason = str(exc)
    elif isinstance(exc, sa.exc.DBAPIError):  # e.g. PostgreSQL: bigint out of range
        reason = f"the database refused it: {(str(exc.orig) if exc.orig else str(exc)).strip().splitlines()[0]}"
    else:  # e.g. SQLite: OverflowError, an integer too large for the column
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    priced = Priced(tenant=tenant, period=period, skipped=f"failed: {reason}", failed=True)
    return FinalizeResult(priced, None, "failed")


def _finalize_chunk(
    app: App,
    period: Period,
    ids: list[int],
    *,
    dry_run: bool,
    stop: Callable[[], bool] | None,
    opened: dict[int, str],
) -> list[FinalizeResult]:
    """Several tenants in one transaction: the same steps as ``_finalize_one``, with the per-chunk
    reads (tenants, live and previous invoices, plans, assignments, discounts) done once."""
    lookback = app.config["billing.adjustment_lookback_months"]
    results: list[FinalizeResult] = []
    with Session(app.engine, expire_on_commit=False) as session, session.begin():
        conn = session.connection()
        if not dry_run:
            lock_tenants(conn, ids, exclusive=True)
        tenants = {t.id: t for t in session.exec(select(Tenant).where(Tenant.id.in_(ids)))}
        live = _live_invoices(session, period, ids)
        previous = _live_invoices(session, period.previous(), ids)
        ctx = _load_context(session, ids, lookback)
        whole = _usage_for_tenants(conn, list(tenants.values()), period)
        to_write: list[tuple[int, Priced]] = []  # (position in results, priced)
        for tenant_id in ids:
            if stop is not None and stop():
                break
            tenant = tenants[tenant_id]
            bounds = period.bounds(tenant.timezone)

            def usage_of(s: datetime, e: datetime, t: int = tenant_id, b: tuple = bounds) -> dict[str, int]:
                return dict(whole[t]) if (s, e) == b else usage_totals(conn, t, s, e)

            existing = live.get(tenant_id)
            if existing is not None:
                results.append(
                    FinalizeResult(
                        Priced(tenant=tenant, period=period, skipped="already finalized", existing=existing),
                        existing,
                        "already finalized",
                    )
                )
                continue
            priced = _price(conn, ctx, tenant, period, usage_of)
            priced.open_period = opened.get(tenant_id)
            prev = previous.get(tenant_id)
            priced.previous_total_minor = prev.total_minor if prev else None
            if priced.draft is None:
                results.append(FinalizeResult(priced, None, "skipped"))
                continue
            to_write.append((len(results), priced))
            results.append(FinalizeResult(priced, None, "would finalize" if dry_run else "finalized"))
        invoices = _write_invoices(app, session, [p for _, p in to_write], dry_run=dry_run)
        for (index, _), invoice in zip(to_write, invoices, strict=True):
            results[index].invoice = invoice
    return results


def _finalize_one(
    app: App, period: Period, tenant_id: int, *, dry_run: bool, opened: dict[int, str]
) -> FinalizeResult:
    lookback = app.config["billing.adjustment_lookback_months"]
    with Session(app.engine, expire_on_commit=False) as session:
        try:
            with session.begin():
                conn = session.connection()
                if not dry_run:
                    lock_tenants(conn, [tenant_id], exclusive=True)
                tenant = session.get(Tenant, tenant_id)
                existing = _live_invoices(session, period, [tenant_id]).get(tenant_id)
                if existing is not None:
                    return FinalizeResult(
                        Priced(tenant=tenant, period=period, skipped="already finalized", existing=existing),
                        existing,
                        "already finalized",
                    )
                ctx = _load_context(session, [tenant_id], lookback)
                priced = _price(conn, ctx, tenant, period, lambda s, e: usage_totals(conn, tenant_id, s, e))
                priced.open_period = opened.get(tenant_id)
                prev = _live_invoices(session, period.previous(), [tenant_id]).get(tenant_id)
                priced.previous_total_minor = prev.total_minor if prev else None
                if priced.draft is None:
                    return FinalizeResult(priced, None, "skipped")
                (invoice,) = _write_invoices(app, session, [priced], dry_run=dry_run)
                if dry_run:  # nothing was written: the same path stopped before its writes
                    return FinalizeResult(priced, invoice, "would finalize")
            return FinalizeResult(priced, invoice, "finalized")
        except sa.exc.IntegrityError:
            # another finalize wrote this tenant's invoice between our check and our insert
            existing = _live_invoices(session, period, [tenant_id]).get(tenant_id)
            tenant = session.get(Tenant, tenant_id)
            return FinalizeResult(
                Priced(tenant=tenant, period=period, skipped="already finalized", existing=existing),
                existing,
                "already finalized",
            )
        except Exception as exc:  # this tenant's data cannot be billed: its failure only
            if _stops_the_run(app, exc):
                raise
            return _failed(session.get(Tenant, tenant_id), period, exc)


def reserve_sequence(session: Session, name: str, count: int, *, dry_run: bool) -> int:
    """The first of ``count`` consecutive values of the counter ``name``, in the caller's
    transaction: a rolled-back transaction gives its values back, so numbering has no gaps."""
    conn = session.connection()
    table = sa.table("counter", sa.column("name"), sa.column("value"))
    if dry_run:
        return (conn.execute(sa.select(table.c.value).where(table.c.name == name)).scalar() or 0) + 1
    last = conn.execute(
        sa.update(table).where(table.c.name == name).values(value=table.c.value + count).returning(table.c.value)
    ).scalar()
    if last is None:
        conn.execute(sa.insert(table).values(name=name, value=count))
        last = count
    return last - count + 1


def _reserve_numbers(session: Session, app: App, period: Period, count: int, *, dry_run: bool) -> list[str]:
    """``count`` consecutive invoice numbers from the global counter."""
    first = reserve_sequence(session, "invoice", count, dry_run=dry_run)
    pattern = app.config["billing.invoice_number_pattern"]
    return [
        pattern.format(period=str(period), year=period.year, month=f"{period.month:02d}", seq=first + i)
        for i in range(count)
    ]


def _write_invoices(app: App, session: Session, batch: list[Priced], *, dry_run: bool) -> list[Invoice]:
    """Invoices, their lines and audit records for priced drafts, in a few statements for the whole
    batch (numbers reserved at once, rows inserted in bulk). A dry run builds them and writes nothing."""
    if not batch:
        return []
    numbers = _reserve_numbers(session, app, batch[0].period, len(batch), dry_run=dry_run)
    invoices = []
    for priced, number in zip(batch, numbers, strict=True):
        draft, tenant, period = priced.draft, priced.tenant, priced.period
        assert draft is not None
        start, end = period.bounds(tenant.timezone)
        currency = draft.currency
        invoices.append(
            Invoice(
                number=number,
                tenant_id=tenant.id,
                period=str(period),
                period_start=start,
                period_end=end,
                currency=currency,
                subtotal_minor=to_minor(draft.subtotal, currency),
                tax_minor=to_minor(draft.tax, currency),
                total_minor=to_minor(draft.total, currency),
                status="finalized",
                fingerprint=priced.fingerprint,
                inputs=priced.inputs,
                actor=app.actor,
            )
        )
    if dry_run:
        return invoices
    session.add_all(invoices)
    session.flush()  # one batched INSERT ... RETURNING id
    lines = []
    plan_ids: set[int] = set()
    for priced, invoice in zip(batch, invoices, strict=True):
        currency = invoice.currency
        for position, line in enumerate(priced.draft.lines, start=1):  # type: ignore[union-attr]
            lines.append(
                {
                    "invoice_id": invoice.id,
                    "position": position,
                    "kind": line.kind,
                    "description": line.description,
                    "quantity": str(line.quantity),
                    "unit_price": None if line.unit_price is None else str(line.unit_price),
                    "amount_minor": to_minor(line.amount, currency),
                    "unrounded": str(line.unrounded),
                    "for_period": line.detail.get("for_period") if line.kind == "adjustment" else None,
                    "detail": _jsonable(line.detail),
                }
            )
        plan_ids.update(seg["plan"]["id"] for seg in priced.inputs["segments"])
        audit(
            session,
            app,
            "invoice.finalize",
            "invoice",
            invoice.number,
            reason=f"--allow-open-period: {priced.open_period}" if priced.open_period else "",
            tenant=priced.tenant.key,
            period=str(priced.period),
            total_minor=invoice.total_minor,
            currency=currency,
            fingerprint=priced.fingerprint,
        )
    if lines:
        session.execute(sa.insert(InvoiceLine), lines)
    session.execute(sa.update(Plan).where(Plan.id.in_(plan_ids)).values(used=True))
    return invoices


def _usage_for_tenants(conn: Connection, tenants: Sequence[Tenant], period: Period) -> dict[int, dict[str, int]]:
    """Units per endpoint over the whole period for each tenant: one query per time zone."""
    usage: dict[int, dict[str, int]] = {t.id: {} for t in tenants}
    zones: dict[str, list[int]] = defaultdict(list)
    for t in tenants:
        zones[t.timezone].append(t.id)
    for tz, ids in zones.items():
        start, end = period.bounds(tz)
        rows = conn.execute(
            sa.select(UsageBucket.tenant_id, UsageBucket.endpoint, sa.func.sum(UsageBucket.units))
            .where(
                UsageBucket.tenant_id.in_(ids),
                UsageBucket.bucket_start >= int(start.timestamp()),
                UsageBucket.bucket_start < int(end.timestamp()),
            )
            .group_by(UsageBucket.tenant_id, UsageBucket.endpoint)
        )
        for tid, endpoint, units in rows:
            usage[tid][endpoint] = int(units)
    return usage


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- inspect, void


def list_invoices(
    app: App, tenant_key: str | None = None, period: Period | None = None, status: str | None = None
) -> list[tuple[Invoice, Tenant]]:
    with Session(app.engine) as session:
        query = select(Invoice, Tenant).join(Tenant, Tenant.id == Invoice.tenant_id).order_by(Invoice.id)
        if tenant_key:
            query = query.where(Invoice.tenant_id == billed_tenants(session, tenant_key)[0].id)
        if period:
            query = query.where(Invoice.period == str(period))
        if status:
            query = query.where(Invoice.status == status)
        return [(inv, ten) for inv, ten in session.exec(query)]


def get_invoice(app: App, ref: str) -> tuple[Invoice, Tenant, list[InvoiceLine]]:
    """An invoice by number (INV-2026-10-000001) or numeric id."""
    with Session(app.engine) as session:
        query = select(Invoice).where(Invoice.number == ref)
        invoice = session.exec(query).first()
        if invoice is None and ref.isascii() and ref.isdigit() and int(ref) < 2**31:  # ids are 32-bit
            invoice = session.get(Invoice, int(ref))
        if invoice is None:
            raise NotFound(f"unknown invoice {quote(ref)}", hint="see `billctl invoices list`")
        tenant = session.get(Tenant, invoice.tenant_id)
        lines = list(
            session.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position))
        )
        return invoice, tenant, lines


def void_invoice(
    app: App, ref: str, reason: str, *, dry_run: bool = False, on_call: Callable[[str], None] | None = None
) -> tuple[Invoice, str]:
    """Void a finalized invoice so its period can be finalized again; returns it and what was done
    in Stripe. Refused (Conflict, exit 9) for an invoice with credit notes or one Stripe reports paid
    or partly paid (correct those with a credit note): an invoice that was pushed is checked in
    Stripe first and, if open there, voided there before it is voided here (see
    ``credit_notes.void_in_stripe_first``)."""
    from billctl.services import credit_notes

    if not reason.strip():
        raise BadInput("--reason is required to void an invoice")
    invoice, tenant, _ = get_invoice(app, ref)
    with Session(app.engine) as session:
        credit_notes.check_voidable(session, invoice)
    in_stripe = "not pushed"
    if invoice.stripe_invoice_id or invoice.stripe_push_started_at:
        in_stripe = credit_notes.void_in_stripe_first(app, invoice, tenant, dry_run=dry_run, on_call=on_call)
    if dry_run:
        return invoice, in_stripe
    with app.session() as session:
        lock_tenants(session.connection(), [tenant.id], exclusive=True)  # as a credit note does
        invoice = session.get(Invoice, invoice.id)
        credit_notes.check_voidable(session, invoice)  # again, in the transaction that voids
        invoice.status = "void"
        invoice.void_reason = reason.strip()
        invoice.voided_at = app.now()
        session.add(invoice)
        audit(
            session,
            app,
            "invoice.void",
            "invoice",
            invoice.number,
            reason=reason.strip(),
            tenant=tenant.key,
            period=invoice.period,
            stripe=in_stripe,
        )
    return invoice, in_stripe


def money(minor: int, currency: str) -> dict:
    """Money in JSON: integer minor units, currency, and a decimal string for humans."""
    return {"minor": minor, "currency": currency, "decimal": str(from_minor(minor, currency))}


def money_of(amount: Decimal, currency: str) -> dict:
    return money(to_minor(quantize(amount, currency), currency), currency)
