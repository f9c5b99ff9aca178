"""Finalize: one immutable, numbered invoice per tenant and period (DESIGN.md invariants 4, 6, 12, 13)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select

from billctl.core.periods import Period
from billctl.db.models import Invoice, Tenant
from billctl.db.repositories import invoices as repo
from billctl.services.context import App
from billctl.services.invoices.preview import failed, open_periods, stops_the_run
from billctl.services.invoices.pricing import Priced, ledger_credits, load_context, price_period
from billctl.services.invoices.queries import billed_tenants
from billctl.services.invoices.writes import write_invoices
from billctl.services.usage import lock_tenants, usage_totals


@dataclass
class FinalizeResult:
    priced: Priced
    invoice: Invoice | None = None  # written (or, in a dry run, what would be written)
    outcome: str = ""  # finalized | would finalize | already finalized | skipped | not over | failed


CHUNK = 100  # tenants finalized per transaction


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
    with app.uow() as uow:
        tenants = billed_tenants(uow.session, tenant_key)
    results: list[FinalizeResult] = []

    def emit(result: FinalizeResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    opened = open_periods(period, tenants, app.now(), allow=allow_open_period)
    todo: list[int] = []
    for tenant in tenants:
        assert tenant.id is not None
        if tenant.id in opened and not allow_open_period:
            emit(FinalizeResult(Priced(tenant=tenant, period=period, skipped=opened[tenant.id]), None, "not over"))
        else:
            todo.append(tenant.id)
    for i in range(0, len(todo), CHUNK):
        ids = todo[i : i + CHUNK]
        try:
            done = _finalize_chunk(app, period, ids, dry_run=dry_run, stop=stop, opened=opened)
        except Exception as exc:  # redo one by one: the failure is one tenant's, or each says it is not
            if stops_the_run(app, exc):
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


def _already(tenant: Tenant, period: Period, existing: Invoice | None) -> FinalizeResult:
    return FinalizeResult(
        Priced(tenant=tenant, period=period, skipped="already finalized", existing=existing),
        existing,
        "already finalized",
    )


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
    lookback = app.config.billing.adjustment_lookback_months
    results: list[FinalizeResult] = []
    # a dry run takes the same path and skips its writes (write_invoices), so the transaction commits nothing
    with app.uow() as uow:
        session, conn = uow.session, uow.connection
        if not dry_run:
            lock_tenants(conn, ids, exclusive=True)
        tenants = {t.id: t for t in session.exec(select(Tenant).where(col(Tenant.id).in_(ids)))}
        live = repo.live_invoices(session, str(period), ids)
        previous = repo.live_invoices(session, str(period.previous()), ids)
        ctx = load_context(session, ids, lookback)
        whole = _usage_for_tenants(conn, list(tenants.values()), period)
        credits = ledger_credits(uow, ids, lock=not dry_run)  # drawn here, recorded with the invoices
        to_write: list[tuple[int, Priced]] = []  # (position in results, priced)
        for tenant_id in ids:
            if stop is not None and stop():
                break
            tenant = tenants[tenant_id]
            bounds = period.bounds(tenant.timezone)

            def usage_of(
                s: datetime, e: datetime, t: int = tenant_id, b: tuple[datetime, datetime] = bounds
            ) -> dict[str, int]:
                return dict(whole[t]) if (s, e) == b else usage_totals(conn, t, s, e)

            existing = live.get(tenant_id)
            if existing is not None:
                results.append(_already(tenant, period, existing))
                continue
            priced = price_period(conn, ctx, tenant, period, usage_of, credits=credits)
            priced.open_period = opened.get(tenant_id)
            prev = previous.get(tenant_id)
            priced.previous_total_minor = prev.total_minor if prev else None
            if priced.draft is None:
                results.append(FinalizeResult(priced, None, "skipped"))
                continue
            to_write.append((len(results), priced))
            results.append(FinalizeResult(priced, None, "would finalize" if dry_run else "finalized"))
        invoices = write_invoices(app, uow, [p for _, p in to_write], dry_run=dry_run)
        for (index, _), invoice in zip(to_write, invoices, strict=True):
            results[index].invoice = invoice
    return results


def _finalize_one(app: App, period: Period, tenant_id: int, *, dry_run: bool, opened: dict[int, str]) -> FinalizeResult:
    """One tenant in its own transaction: its failure is its own (``failed``), the others go on."""
    lookback = app.config.billing.adjustment_lookback_months
    try:
        with app.uow() as uow:
            session, conn = uow.session, uow.connection
            if not dry_run:
                lock_tenants(conn, [tenant_id], exclusive=True)
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            existing = repo.live_invoices(session, str(period), [tenant_id]).get(tenant_id)
            if existing is not None:
                return _already(tenant, period, existing)
            ctx = load_context(session, [tenant_id], lookback)
            credits = ledger_credits(uow, [tenant_id], lock=not dry_run)
            priced = price_period(
                conn, ctx, tenant, period, lambda s, e: usage_totals(conn, tenant_id, s, e), credits=credits
            )
            priced.open_period = opened.get(tenant_id)
            prev = repo.live_invoices(session, str(period.previous()), [tenant_id]).get(tenant_id)
            priced.previous_total_minor = prev.total_minor if prev else None
            if priced.draft is None:
                return FinalizeResult(priced, None, "skipped")
            (invoice,) = write_invoices(app, uow, [priced], dry_run=dry_run)
            if dry_run:  # nothing was written: the same path stopped before its writes
                return FinalizeResult(priced, invoice, "would finalize")
        return FinalizeResult(priced, invoice, "finalized")
    except sa.exc.IntegrityError:
        # another finalize wrote this tenant's invoice between our check and our insert
        with app.uow() as uow:
            existing = repo.live_invoices(uow.session, str(period), [tenant_id]).get(tenant_id)
            tenant = uow.session.get(Tenant, tenant_id)
            assert tenant is not None
            return _already(tenant, period, existing)
    except Exception as exc:  # this tenant's data cannot be billed: its failure only
        if stops_the_run(app, exc):
            raise
        with app.uow() as uow:
            tenant = uow.session.get(Tenant, tenant_id)
        assert tenant is not None
        return FinalizeResult(failed(tenant, period, exc), None, "failed")


def _usage_for_tenants(conn: sa.Connection, tenants: list[Tenant], period: Period) -> dict[int, dict[str, int]]:
    """Units per endpoint over the whole period for each tenant: one query per time zone."""
    usage: dict[int, dict[str, int]] = {t.id: {} for t in tenants if t.id is not None}
    zones: dict[str, list[int]] = {}
    for t in tenants:
        if t.id is not None:
            zones.setdefault(t.timezone, []).append(t.id)
    for tz, tenant_ids in zones.items():
        start, end = period.bounds(tz)
        for tid, endpoint, units in repo.usage_by_tenant(conn, tenant_ids, start, end):
            usage[tid][endpoint] = int(units)
    return usage
