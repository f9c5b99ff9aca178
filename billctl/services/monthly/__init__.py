"""``run-monthly``: close a period end to end, safe to re-run, with a plan before it acts.

Steps, each idempotent, each recorded in ``run_step``:
lock -> usage (drain the stream) -> finalize -> guardrails (hold suspicious invoices) ->
credits-expiry (write off expired credits) -> customers (Stripe) -> push (Stripe) -> status (Stripe)
-> credits-alerts (tenants low on credits, in the summary; not a failure) -> summary.

A run killed anywhere is completed by the next one: finalize skips tenants already invoiced, push
skips what Stripe already has (idempotency keys, ids stored as soon as known), and the lock lease
of a killed run expires. The dry run takes the same decisions on the same data and writes nothing.

The package: ``run`` (the steps), ``lease`` (the lock), ``guardrails`` (hold and release),
``summary`` (the report and its metrics). Every name other modules use is importable from
``billctl.services.monthly``.
"""

from __future__ import annotations

from billctl.services.monthly.guardrails import apply_guardrails, hold, release
from billctl.services.monthly.lease import LOCK_NAME, Lease
from billctl.services.monthly.run import MonthlyRun, optional_gateway, previous_period
from billctl.services.monthly.summary import MonthlyReport, change_pct, push_metrics

__all__ = [
    "LOCK_NAME",
    "Lease",
    "MonthlyReport",
    "MonthlyRun",
    "apply_guardrails",
    "change_pct",
    "hold",
    "optional_gateway",
    "previous_period",
    "push_metrics",
    "release",
]
