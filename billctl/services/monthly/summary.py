"""What a close reports: per tenant, held, failed, pushed, the totals per currency, its exit code, and
the same as metrics for a Prometheus Pushgateway."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billctl.errors import ExitCode


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
    credits_expired: list[dict[str, Any]] = field(default_factory=list)  # credits written off (or deferred)
    credit_alerts: list[dict[str, Any]] = field(default_factory=list)  # low on credits: reported, not a failure
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
        from billctl.core.money import amount_json
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
            "credits_expired": [
                {
                    "tenant": x["tenant"],
                    "grant": x["grant"],
                    "amount": amount_json(x["amount"], x["currency"]),
                    "expired_at": x["expired_at"].isoformat(),
                    "state": x["state"],
                }
                for x in self.credits_expired
            ],
            "credit_alerts": [
                {
                    "tenant": a["tenant"],
                    "available": amount_json(a["available"], a["currency"]),
                    "run_out_on": a["run_out_on"].isoformat() if a["run_out_on"] else None,
                    "reasons": a["reasons"],
                }
                for a in self.credit_alerts
            ],
            "notices": self.notices,
            "interrupted": self.interrupted,
        }


def change_pct(total: int | None, previous: int | None) -> str | None:
    """The change against last month in percent, signed, one decimal (None: nothing to compare)."""
    if total is None or not previous:
        return None
    return f"{(Decimal(total) - previous) / previous * 100:+.1f}"


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
