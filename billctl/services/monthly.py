"""``run-monthly``: close a period end to end, safe to re-run, with a plan before it acts.

Steps, each idempotent, each recorded in ``run_step``:
lock -> usage (drain the stream) -> finalize -> guardrails (hold suspicious invoices) ->
customers (Stripe) -> push (Stripe) -> status (Stripe) -> summary.

A run killed anywhere is completed by the next one: finalize skips tenants already invoiced, push
skips what Stripe already has (idempotency keys, ids stored as soon as known), and the lock lease
of a killed run expires. The dry run takes the same decisions on the same data and writes nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pendulum
import sqlalchemy as sa
from sqlmodel import Session, select

from billctl.core.bounds import REASON
from billctl.core.guardrails import HoldRules, hold_reason, usage_dropped
from billctl.core.money import from_minor
from billctl.core.periods import Period, period_of
from billctl.db.models import Invoice, RunLock, RunStep, Tenant, utcnow
from billctl.errors import ExitCode, Interrupted, LockHeld
from billctl.logs import RunLog
from billctl.services.context import App, audit, check_text
from billctl.services.invoices import FinalizeResult, finalize, require_period_over

LOCK_NAME = "run-monthly"


def optional_gateway(app: App, *, dry_run: bool = False):  # type: ignore[no-untyped-def]
    """The Stripe gateway, or None when no key is configured at all. A bad key still raises
    ConfigError: it is a configuration error, not a reason to skip billing."""
    from billctl.errors import NoStripeKey
    from billctl.services.stripe_sync import gateway

    try:
        return gateway(app, dry_run=dry_run)
    except NoStripeKey:
        return None


def previous_period(app: App) -> Period:
    """The calendar month before this one, in billing.timezone."""
    return period_of(pendulum.now("UTC"), app.config["billing.timezone"]).previous()


# -- the lock -------------------------------------------------------------------------------------
class Lease:
    """A lease on ``run_lock``: taken atomically, renewed by heartbeats, taken over when stale."""

    def __init__(self, app: App, run_id: str, name: str = LOCK_NAME) -> None:
        self.app, self.run_id, self.name = app, run_id, name
        self.stale = timedelta(seconds=app.config["monthly.lock_stale_seconds"])
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.group = app.config["monthly.lock_group"]
        self._last_beat = 0.0

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lease was taken over. Raises LockHeld."""
        table = RunLock.__table__
        now = utcnow()
        values = {
            "holder": self.run_id,
            "host": self.host,
            "pid": self.pid,
            "grp": self.group,
            "acquired_at": now,
            "heartbeat_at": now,
        }
        with self.app.engine.begin() as conn:
            row = conn.execute(sa.select(table).where(table.c.name == self.name)).first()
        if row is None:
            try:
                with self.app.engine.begin() as conn:
                    conn.execute(sa.insert(table).values(name=self.name, **values))
                return None
            except sa.exc.IntegrityError:  # someone else inserted it just now
                with self.app.engine.begin() as conn:
                    row = conn.execute(sa.select(table).where(table.c.name == self.name)).first()
        assert row is not None
        dead = row.host == self.host and row.pid != self.pid and not _alive(row.pid)
        same_group = bool(self.group) and row.grp == self.group
        if not dead and not same_group and row.heartbeat_at > now - self.stale:
            raise LockHeld(
                f"another run holds the lock: run {row.holder} on {row.host} (pid {row.pid}), "
                f"started {row.acquired_at:%Y-%m-%d %H:%M:%S}Z, last heartbeat {row.heartbeat_at:%H:%M:%S}Z",
                hint=f"wait for it; a killed run's lock is taken over after {int(self.stale.total_seconds())} s "
                "without a heartbeat (monthly.lock_stale_seconds)",
            )
        with self.app.engine.begin() as conn:  # compare-and-set on the stale holder
            taken = conn.execute(
                sa.update(table)
                .where(
                    table.c.name == self.name, table.c.holder == row.holder, table.c.heartbeat_at == row.heartbeat_at
                )
                .values(**values)
            ).rowcount
        if taken != 1:
            raise LockHeld("another run took the lock at the same moment", hint="wait for it to finish")
        if dead:
            why = "its process is gone"
        elif same_group:
            why = f"an earlier attempt of the same group {self.group}"
        else:
            why = f"no heartbeat since {row.heartbeat_at:%Y-%m-%d %H:%M:%S}Z"
        return f"took over the lock of run {row.holder} on {row.host} ({why})"

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < 5:
            return
        table = RunLock.__table__
        with self.app.engine.begin() as conn:
            kept = conn.execute(
                sa.update(table)
                .where(table.c.name == self.name, table.c.holder == self.run_id)
                .values(heartbeat_at=utcnow())
            ).rowcount
        if kept != 1:
            raise LockHeld("this run lost its lock (another run took it over as stale); stopping")
        self._last_beat = time.monotonic()

    def release(self) -> None:
        table = RunLock.__table__
        with self.app.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.name == self.name, table.c.holder == self.run_id))

    def holder(self) -> dict[str, Any] | None:
        table = RunLock.__table__
        with self.app.engine.begin() as conn:
            row = conn.execute(sa.select(table).where(table.c.name == self.name)).first()
        return None if row is None else dict(row._mapping)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the report -----------------------------------------------------------------------------------
@dataclass
class MonthlyReport:
    run_id: str
    period: str
    dry_run: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)  # one per tenant
    held: list[dict[str, Any]] = field(default_factory=list)
    not_over: list[dict[str, Any]] = field(default_factory=list)  # tenants whose period has not ended yet
    failed: list[dict[str, Any]] = field(default_factory=list)
    zero_usage: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)  # to create / created / linked
    pushed: list[dict[str, Any]] = field(default_factory=list)
    attention: list[dict[str, Any]] = field(default_factory=list)  # payment problems after sync-status
    notices: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    def totals(self) -> dict[str, dict[str, Any]]:
        per: dict[str, dict[str, Any]] = defaultdict(lambda: {"invoices": 0, "total_minor": 0, "previous_minor": None})
        for inv in self.invoices:
            if inv["total_minor"] is None:
                continue
            acc = per[inv["currency"]]
            acc["invoices"] += 1
            acc["total_minor"] += inv["total_minor"]
            if inv["previous_minor"] is not None:
                acc["previous_minor"] = (acc["previous_minor"] or 0) + inv["previous_minor"]
        return dict(sorted(per.items()))

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.failed or self.held or self.not_over:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        from billctl.services.invoices import money
        from billctl.services.stripe_sync import attention_doc

        return {
            "run_id": self.run_id,
            "period": self.period,
            "dry_run": self.dry_run,
            "exit_code": int(self.exit_code),
            "steps": self.steps,
            "usage": self.usage,
            "invoices": [
                {
                    **{k: v for k, v in inv.items() if not k.endswith("_minor") and not k.startswith("_")},
                    "total": None if inv["total_minor"] is None else money(inv["total_minor"], inv["currency"]),
                    "previous_total": None
                    if inv["previous_minor"] is None
                    else money(inv["previous_minor"], inv["currency"]),
                }
                for inv in self.invoices
            ],
            "totals": {
                c: {
                    "invoices": t["invoices"],
                    "total": money(t["total_minor"], c),
                    "previous_total": None if t["previous_minor"] is None else money(t["previous_minor"], c),
                }
                for c, t in self.totals().items()
            },
            "held": [
                {
                    **{k: v for k, v in h.items() if k not in ("total", "total_minor")},
                    "total": money(h["total_minor"], h["currency"]),
                }
                for h in self.held
            ],
            "not_over": self.not_over,
            "failed": self.failed,
            "zero_usage": self.zero_usage,
            "customers": self.customers,
            "pushed": self.pushed,
            "attention": [attention_doc(a) for a in self.attention],
            "notices": self.notices,
            "interrupted": self.interrupted,
        }


def _change(total: int | None, previous: int | None) -> str | None:
    if total is None or not previous:
        return None
    return f"{(Decimal(total) - previous) / previous * 100:+.1f}"


# -- the run --------------------------------------------------------------------------------------
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
        self.rules = HoldRules.parse(app.config["monthly.hold_above"], app.config["monthly.hold_multiple"])
        self.gateway = None

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
            with self.app.session() as session:
                row = RunStep(run_id=self.report.run_id, period=str(self.period), step=name, state="started")
                session.add(row)
                session.flush()
                row_id = row.id
        self.log.event("step started", step=name, period=str(self.period), dry_run=self.dry_run)
        if self.on_step:
            self.on_step(name, "started")
        state, detail = "done", {}
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
                with self.app.session() as session:
                    session.execute(
                        sa.update(RunStep)
                        .where(RunStep.id == row_id)
                        .values(state=state, detail=detail, finished_at=utcnow())
                    )
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
        self._step("customers", self._customers)
        self._step("push", self._push)
        self._step("status", self._status)
        return self.report

    # -- steps --
    def _usage(self) -> dict[str, Any]:
        if not self.app.config["monthly.drain_stream"]:
            self.report.notices.append("usage stream not drained (monthly.drain_stream = false)")
            return {"_skipped": True}
        from billctl.services.aggregate import aggregate

        result = aggregate(self.app, dry_run=self.dry_run, stop=self.stop)
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
                    "change_pct": _change(total, previous),
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
        previous = _totals_of(self.app, self.period.previous())  # one query, not one per tenant
        for inv in self.report.invoices:
            if inv["previous_minor"] is None and inv["total_minor"] is not None:
                inv["previous_minor"] = previous.get(inv["_tenant_id"])
                inv["change_pct"] = _change(inv["total_minor"], inv["previous_minor"])
        if self.report.not_over:
            self.report.notices.append(
                f"{len(self.report.not_over)} tenant(s) not finalized: their {self.period} is not over yet in their "
                "time zone; run again later (or schedule the close after the westernmost tenant's month end)"
            )
        return dict(counts)

    def _guardrails(self) -> dict[str, Any]:
        held = 0
        stored = _invoice_states(self.app, self.period)  # one query: id -> (hold reason, released, in Stripe)
        for inv in self.report.invoices:
            state = stored.get(inv["_id"])
            if inv["total_minor"] is None or inv["status"] not in (None, "finalized"):
                if inv["status"] == "held":
                    self.report.held.append(self._held_doc(inv, state[0] if state else None))
                continue
            if state is not None and (state[1] or state[2]):
                continue  # released by an operator, or already in Stripe: never (re-)hold it
            reason = hold_reason(inv["total_minor"], inv["currency"], inv["previous_minor"], self.rules)
            if reason is None:
                continue
            held += 1
            inv["status"] = "held" if not self.dry_run else "would hold"
            self.report.held.append(self._held_doc(inv, reason))
            if not self.dry_run:
                _hold(self.app, inv["_id"], reason)
        dropped = self._zero_usage()
        return {"held": held, "zero_usage": len(dropped)}

    def _held_doc(self, inv: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {
            "tenant": inv["tenant"],
            "number": inv["number"],
            "reason": reason or "",
            "total": str(from_minor(inv["total_minor"], inv["currency"])),
            "total_minor": inv["total_minor"],
            "currency": inv["currency"],
        }

    def _zero_usage(self) -> list[dict[str, Any]]:
        from billctl.services.usage_views import top_tenants

        minimum = self.app.config["monthly.zero_usage_min_previous"]
        if minimum <= 0:
            return []
        now = {key: units for key, _, _, units in top_tenants(self.app, self.period, limit=10**9)}
        before = {key: units for key, _, _, units in top_tenants(self.app, self.period.previous(), limit=10**9)}
        with Session(self.app.engine) as session:
            active = [t.key for t in session.exec(select(Tenant).where(Tenant.status == "active"))]
        for key in sorted(active):
            if usage_dropped(now.get(key, 0), before.get(key, 0), minimum):
                self.report.zero_usage.append({"tenant": key, "units": 0, "previous_units": before[key]})
        return self.report.zero_usage

    def _stripe(self):  # type: ignore[no-untyped-def]
        """The Stripe gateway, or False (with a notice) when no key is configured."""
        if self.gateway is None:
            self.gateway = optional_gateway(self.app, dry_run=self.dry_run) or False
            if not self.gateway:
                self.report.notices.append(
                    "Stripe skipped: no API key configured (set STRIPE_API_KEY); invoices stay local until "
                    "`billctl stripe push`"
                )
        return self.gateway

    def _customers(self) -> dict[str, Any]:
        gw = self._stripe()
        if not gw:
            return {"_skipped": True}
        from billctl.services.stripe_sync import sync_customers

        def check(_outcome) -> None:  # type: ignore[no-untyped-def]
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
        if not gw:
            return {"_skipped": True}
        from billctl.services.stripe_sync import push

        def check(_outcome) -> None:  # type: ignore[no-untyped-def]
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
        if not gw:
            return {"_skipped": True}
        from billctl.services.stripe_sync import sync_status

        result = sync_status(self.app, gw)
        self.report.attention = list(result.attention)
        return {"events": result.events, "changes": len(result.changes), "attention": len(result.attention)}


# -- invoice helpers ------------------------------------------------------------------------------
def _totals_of(app: App, period: Period) -> dict[int, int]:
    """tenant id -> total of its live invoice for ``period``."""
    with Session(app.engine) as session:
        rows = session.exec(
            select(Invoice.tenant_id, Invoice.total_minor).where(
                Invoice.period == str(period), Invoice.status != "void"
            )
        )
        return {tid: total for tid, total in rows}


def _invoice_states(app: App, period: Period) -> dict[int, tuple[str | None, bool, bool]]:
    """invoice id -> (hold reason, released by an operator, already in Stripe) for ``period``."""
    with Session(app.engine) as session:
        rows = session.exec(
            select(Invoice.id, Invoice.hold_reason, Invoice.released_at, Invoice.stripe_invoice_id).where(
                Invoice.period == str(period), Invoice.status != "void"
            )
        )
        return {i: (reason, released is not None, stripe is not None) for i, reason, released, stripe in rows}


def _hold(app: App, invoice_id: int, reason: str) -> None:
    with app.session() as session:
        inv = session.get(Invoice, invoice_id)
        if inv is None or inv.status != "finalized":
            return
        inv.status = "held"
        inv.hold_reason = reason
        audit(session, app, "invoice.hold", "invoice", inv.number, reason=reason)


def release(app: App, ref: str, reason: str) -> Invoice:
    """A held invoice goes back to finalized (to be pushed); recorded with who and why."""
    from billctl.errors import Conflict
    from billctl.services.invoices import get_invoice

    check_text(reason, "--reason", REASON)
    found, _tenant, _lines = get_invoice(app, ref)
    with app.session() as session:
        inv = session.get(Invoice, found.id)
        assert inv is not None
        if inv.status != "held":
            raise Conflict(f"invoice {inv.number} is {inv.status}, not held", hint="only held invoices are released")
        inv.status = "finalized"
        inv.released_at = utcnow()
        audit(session, app, "invoice.release", "invoice", inv.number, reason=reason, hold_reason=inv.hold_reason)
        session.flush()
        session.expunge(inv)
    return inv


# -- metrics --------------------------------------------------------------------------------------
def push_metrics(url: str, report: MonthlyReport, seconds: float) -> None:
    """Prometheus text format to a Pushgateway (job=billctl_run_monthly). Failures are only logged by
    the caller: metrics never fail a close."""
    import urllib.request

    lines = [
        "# TYPE billctl_run_monthly_exit_code gauge",
        f"billctl_run_monthly_exit_code {int(report.exit_code)}",
        "# TYPE billctl_run_monthly_duration_seconds gauge",
        f"billctl_run_monthly_duration_seconds {seconds:.3f}",
        "# TYPE billctl_run_monthly_invoices gauge",
        f'billctl_run_monthly_invoices{{state="finalized"}} {sum(1 for i in report.invoices if i["number"])}',
        f'billctl_run_monthly_invoices{{state="held"}} {len(report.held)}',
        f'billctl_run_monthly_invoices{{state="failed"}} {len(report.failed)}',
        "# TYPE billctl_run_monthly_step_seconds gauge",
        *(f'billctl_run_monthly_step_seconds{{step="{s["step"]}"}} {s["seconds"]}' for s in report.steps),
    ]
    if report.exit_code == ExitCode.OK:
        lines += [
            "# TYPE billctl_run_monthly_last_success_timestamp gauge",
            f"billctl_run_monthly_last_success_timestamp {int(time.time())}",
        ]
    body = ("\n".join(lines) + "\n").encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/metrics/job/billctl_run_monthly/period/{report.period}",
        data=body,
        method="PUT",
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
