"""The close itself: ``MonthlyRun`` takes the lock, then runs each step, recorded in ``run_step``:
usage (drain the stream) -> finalize -> guardrails (hold suspicious invoices) -> credits-expiry
(write off the credits expired by the period's end) -> customers (Stripe) -> push (Stripe) -> status
(Stripe) -> credits-alerts (tenants low on credits or running out: reported, never a failure), and
builds the report as it goes."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pendulum

from billctl.core import credits as credits_core
from billctl.core.guardrails import HoldRules
from billctl.core.periods import Period, period_of
from billctl.db.models import utcnow
from billctl.db.repositories import runs
from billctl.errors import Interrupted
from billctl.logs import RunLog
from billctl.services.context import App
from billctl.services.invoices import FinalizeResult, finalize, require_period_over
from billctl.services.monthly.guardrails import apply_guardrails
from billctl.services.monthly.lease import Lease
from billctl.services.monthly.summary import MonthlyReport, change_pct

if TYPE_CHECKING:  # the Stripe SDK is imported only when a close talks to Stripe
    from billctl.services.stripe_sync import Outcome
    from billctl.stripe.client import Gateway


MONTHLY_CONSUMER = "billctl-run-monthly"  # the stream consumer of the close's usage step


def optional_gateway(app: App, *, dry_run: bool = False) -> Gateway | None:
    """The Stripe gateway, or None when no key is configured at all. A bad key still raises
    ConfigError: it is a configuration error, not a reason to skip billing."""
    from billctl.services.stripe_sync import optional_gateway as from_settings

    return from_settings(app, dry_run=dry_run)


def previous_period(app: App) -> Period:
    """The calendar month before this one, in billing.timezone."""
    return period_of(pendulum.now("UTC"), app.config.billing.timezone).previous()


class MonthlyRun:
    def __init__(
        self,
        app: App,
        period: Period,
        *,
        dry_run: bool,
        log: RunLog,
        stop: threading.Event | None = None,
        on_step: Callable[[str, str], None] | None = None,
        allow_open_period: bool = False,
    ) -> None:
        self.app, self.period, self.dry_run, self.log = app, period, dry_run, log
        self.allow_open_period = allow_open_period
        self.stop = stop or threading.Event()
        self.on_step = on_step
        self.report = MonthlyReport(run_id=log.run_id, period=str(period), dry_run=dry_run)
        self.lease = Lease(app, log.run_id)
        self.rules = HoldRules.parse(app.config.monthly.hold_above, app.config.monthly.hold_multiple)
        self._gateway: Gateway | None = None
        self._gateway_checked = False
        # a dry run: what its rehearsed finalize would have drawn, by tenant id (every tenant it would
        # invoice), so the credits steps plan what the real close does after those draws
        self._rehearsed: dict[int, list[credits_core.Entry]] = {}

    # -- plumbing --
    def _check_stop(self) -> bool:
        if not self.dry_run:
            self.lease.heartbeat()
        return self.stop.is_set()

    def _step(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        if self.stop.is_set():
            raise Interrupted(f"stopped before step {name}")
        started = time.monotonic()
        row_id = None
        if not self.dry_run:
            self.lease.heartbeat(force=True)
            with self.app.uow() as uow:
                row_id = runs.start_step(uow.session, self.report.run_id, str(self.period), name)
        self.log.event("step started", step=name, period=str(self.period), dry_run=self.dry_run)
        if self.on_step:
            self.on_step(name, "started")
        state = "done"
        detail: dict[str, Any] = {}
        try:
            detail = fn() or {}
            if detail.pop("_skipped", False):
                state = "skipped"
            if self.stop.is_set():
                state = "interrupted"
        except Interrupted:
            state = "interrupted"
            raise
        except BaseException as exc:
            state, detail = "failed", {"error": str(exc)}
            raise
        finally:
            seconds = round(time.monotonic() - started, 3)
            self.report.steps.append({"step": name, "state": state, "seconds": seconds, **detail})
            if row_id is not None:
                with self.app.uow() as uow:
                    runs.finish_step(uow.session, row_id, state, detail, utcnow())
            self.log.event("step " + state, step=name, seconds=seconds, **detail)
            if self.on_step:
                self.on_step(name, state)
        if state == "interrupted":
            raise Interrupted(f"stopped during step {name}, after the item in progress")

    def run(self) -> MonthlyReport:
        if not self.allow_open_period:  # the period is over for nobody: refuse before touching anything
            require_period_over(self.app, self.period)
        self._stripe()  # a Stripe key that is set but unusable fails the run now (exit 4), not after finalize
        if self.dry_run:
            holder = self.lease.holder()
            if holder:
                self.report.notices.append(
                    f"a run holds the lock now (run {holder['holder']} on {holder['host']}); the real run would wait"
                )
            return self._steps()
        note = self.lease.acquire()
        if note:
            self.report.notices.append(note)
            self.log.event(note, step="lock", level="warning")
        try:
            return self._steps()
        except Interrupted:
            self.report.interrupted = True
            return self.report
        finally:
            self.lease.release()

    def _steps(self) -> MonthlyReport:
        self._step("usage", self._usage)
        self._step("finalize", self._finalize)
        self._step("guardrails", self._guardrails)
        self._step("credits-expiry", self._expire_credits)
        self._step("customers", self._customers)
        self._step("push", self._push)
        self._step("status", self._status)
        self._step("credits-alerts", self._credit_alerts)  # after status: purchases paid meanwhile count
        return self.report

    # -- steps --
    def _usage(self) -> dict[str, Any]:
        if not self.app.config.monthly.drain_stream:
            self.report.notices.append("usage stream not drained (monthly.drain_stream = false)")
            return {"_skipped": True}
        from billctl.services.aggregate import aggregate

        # One consumer name for every run of the close (only one runs at a time: the lease): a run
        # killed in the middle of the drain leaves entries pending under this name, and the next run
        # takes them back before it finalizes. Under a per-process name they would wait out
        # stream.claim_idle_ms, the drain would end without them, and the invoices would miss them.
        consumer = self.app.config.stream.consumer or MONTHLY_CONSUMER
        result = aggregate(self.app, dry_run=self.dry_run, stop=self.stop, consumer=consumer)
        self.report.usage = {
            "entries": result.read,
            "counted": result.counted,
            "units": result.units,
            "duplicates": result.duplicates,
            "dead_lettered": len(result.rejected),
        }
        if self.dry_run and result.counted:
            self.report.notices.append(
                f"{result.counted:,} stream event(s) are not aggregated yet; the amounts below do not include them "
                "(the real run drains the stream first)"
            )
        return dict(self.report.usage)

    def _finalize(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)

        def record(result: FinalizeResult) -> None:
            counts[result.outcome] += 1
            priced, invoice = result.priced, result.invoice
            if result.outcome == "not over":
                self.report.not_over.append({"tenant": priced.tenant.key, "reason": priced.skipped})
            if result.outcome == "would finalize" and priced.tenant.id is not None:
                drawn = priced.credits.draws if priced.credits is not None else ()
                at = self.app.now()
                self._rehearsed[priced.tenant.id] = [
                    credits_core.Entry(d.grant_id, credits_core.EntryKind.DRAW, -d.amount, at) for d in drawn
                ]
            if result.outcome == "failed":
                self.report.failed.append({"step": "finalize", "tenant": priced.tenant.key, "reason": priced.skipped})
            total = invoice.total_minor if invoice is not None else None
            previous = priced.previous_total_minor
            self.report.invoices.append(
                {
                    "tenant": priced.tenant.key,
                    "outcome": result.outcome,
                    # a dry run does not draw numbers from the counter: it cannot know them
                    "number": invoice.number if invoice is not None and result.outcome != "would finalize" else None,
                    "status": invoice.status if invoice is not None else None,
                    "currency": invoice.currency if invoice is not None else priced.currency,
                    "total_minor": total,
                    "previous_minor": previous,
                    "change_pct": change_pct(total, previous),
                    "note": priced.skipped or "",
                    "_id": invoice.id if invoice is not None else None,
                    "_tenant_id": priced.tenant.id,
                }
            )

        finalize(
            self.app,
            self.period,
            dry_run=self.dry_run,
            on_result=record,
            stop=self._check_stop,
            allow_open_period=self.allow_open_period,
        )
        with self.app.uow(readonly=True) as uow:  # one query, not one per tenant
            previous = runs.live_totals(uow.session, str(self.period.previous()))
        for inv in self.report.invoices:
            if inv["previous_minor"] is None and inv["total_minor"] is not None:
                inv["previous_minor"] = previous.get(inv["_tenant_id"])
                inv["change_pct"] = change_pct(inv["total_minor"], inv["previous_minor"])
        if self.report.not_over:
            self.report.notices.append(
                f"{len(self.report.not_over)} tenant(s) not finalized: their {self.period} is not over yet in their "
                "time zone; run again later (or schedule the close after the westernmost tenant's month end)"
            )
        return dict(counts)

    def _guardrails(self) -> dict[str, Any]:
        return apply_guardrails(self.app, self.report, self.period, self.rules, dry_run=self.dry_run)

    def _expire_credits(self) -> dict[str, Any]:
        """Write off what expired by the end of the period (after finalize drew on it); idempotent:
        a re-run finds nothing left to write off."""
        from billctl.services.credits import expire_credits

        result = expire_credits(self.app, str(self.period), dry_run=self.dry_run, rehearsed=self._rehearsed)
        for state, found in (("written off", result.expired), ("deferred", result.deferred)):
            for x in found:
                self.report.credits_expired.append(
                    {
                        "tenant": x.tenant,
                        "grant": x.grant_id,
                        "currency": x.currency,
                        "amount": x.amount,
                        "expired_at": x.expired_at,
                        "state": state,
                    }
                )
        return {"expired": len(result.expired), "deferred": len(result.deferred)}

    def _credit_alerts(self) -> dict[str, Any]:
        """The tenants below ``credits.alert_below`` or projected to run out before their current
        period ends: listed in the summary; they do not change the exit code."""
        from billctl.services.credits import credit_alerts

        result = credit_alerts(self.app, rehearsed=self._rehearsed)
        for t in result.alerts:
            b = t.burn
            self.report.credit_alerts.append(
                {
                    "tenant": t.tenant,
                    "currency": b.currency,
                    "available": b.available,
                    "run_out_on": b.run_out_on,
                    "reasons": b.reasons(),
                }
            )
        return {"checked": len(result.tenants), "alerts": len(result.alerts)}

    def _stripe(self) -> Gateway | None:
        """The Stripe gateway, or None (with a notice) when no key is configured."""
        if not self._gateway_checked:
            self._gateway = optional_gateway(self.app, dry_run=self.dry_run)
            self._gateway_checked = True
            if self._gateway is None:
                self.report.notices.append(
                    "Stripe skipped: no API key configured (set STRIPE_API_KEY); invoices stay local until "
                    "`billctl stripe push`"
                )
        return self._gateway

    def _customers(self) -> dict[str, Any]:
        gw = self._stripe()
        if gw is None:
            return {"_skipped": True}
        from billctl.services.stripe_sync import sync_customers

        def check(_outcome: Outcome) -> None:
            if self._check_stop():
                raise Interrupted("stopped after the customer in progress")

        result = sync_customers(self.app, gw, on_outcome=check)
        for o in result.outcomes:
            if o.action not in ("unchanged", "found"):
                self.report.customers.append({"tenant": o.tenant, "action": o.action, "stripe_id": o.stripe_id})
            if o.failed:
                self.report.failed.append({"step": "customers", "tenant": o.tenant, "reason": o.note})
        return result.counts()

    def _push(self) -> dict[str, Any]:
        gw = self._stripe()
        if gw is None:
            return {"_skipped": True}
        from billctl.services.stripe_sync import push

        def check(_outcome: Outcome) -> None:
            if self._check_stop():
                raise Interrupted("stopped after the invoice in progress")

        result = push(self.app, gw, self.period, on_outcome=check)
        if self.dry_run:  # what finalize would write is not in the database yet: list it too
            queued = {o.ref for o in result.outcomes}
            for inv in self.report.invoices:
                if inv["outcome"] == "would finalize" and inv["status"] != "would hold" and inv["number"] not in queued:
                    self.report.pushed.append(
                        {"number": inv["number"], "tenant": inv["tenant"], "action": "would push"}
                    )
        for o in result.outcomes:
            if o.kind == "invoice":
                self.report.pushed.append(
                    {
                        "number": o.ref,
                        "tenant": o.tenant,
                        "action": o.action,
                        "stripe_id": o.stripe_id,
                        "status": o.status,
                    }
                )
            if o.failed:
                self.report.failed.append({"step": "push", "tenant": o.tenant, "invoice": o.ref, "reason": o.note})
        return result.counts()

    def _status(self) -> dict[str, Any]:
        gw = self._stripe()
        if gw is None:
            return {"_skipped": True}
        from billctl.services.stripe_sync import sync_status

        result = sync_status(self.app, gw)
        self.report.attention = list(result.attention)
        return {"events": result.events, "changes": len(result.changes), "attention": len(result.attention)}
