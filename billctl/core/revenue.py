"""Revenue of a period from its invoices: per plan and currency, tenants gained and lost, top
tenants, change against the previous period. Pure: invoice summaries in, report out.

Amounts are integer minor units; currencies are never added together. Revenue is the invoice
subtotal (before tax) net of its credit notes (DESIGN.md invariant 11: revenue is invoices minus
credit notes; a credit note counts in the period of the invoice it corrects); tax and total are
reported beside it, net too, and what was credited (before tax) is shown on its own.

Prepaid credits (``billctl.core.invoice_credits``): revenue is the subtotal, so it is net of
promotional credits (a discount) and includes what purchased credits paid (a payment). Beside it:
usage billed (the charges before credits), promotional and purchased credits consumed, and the cash
due, so that ``usage - promotional + tax - purchased = cash due``, all net of credit notes (a credit
note gives back cash first, then purchased credits: ``invoice_credits.split_credit``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class InvoiceSummary:
    tenant: str
    number: str
    plan: str  # the plan in effect at the end of the period
    currency: str
    subtotal_minor: int  # net of credit notes
    tax_minor: int
    total_minor: int
    credited_minor: int = 0  # credit notes on the invoice, before tax (already taken off the subtotal)
    promotional_minor: int = 0  # promotional credits drawn (the subtotal is net of them)
    purchased_minor: int = 0  # purchased credits that paid the invoice, net of those credit notes gave back

    @property
    def usage_minor(self) -> int:
        """Usage billed: the charges before credits (net of credit notes)."""
        return self.subtotal_minor + self.promotional_minor

    @property
    def cash_due_minor(self) -> int:
        return self.subtotal_minor + self.tax_minor - self.purchased_minor


@dataclass
class Group:
    plan: str
    currency: str
    invoices: int = 0
    revenue_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0
    credited_minor: int = 0
    usage_minor: int = 0
    promotional_minor: int = 0
    purchased_minor: int = 0
    cash_due_minor: int = 0
    previous_revenue_minor: int = 0
    previous_invoices: int = 0

    @property
    def change_percent(self) -> Decimal | None:
        return change_percent(self.revenue_minor, self.previous_revenue_minor)


@dataclass
class Revenue:
    period: str
    previous_period: str
    by_plan: list[Group] = field(default_factory=list)  # (plan, currency), biggest revenue first per currency
    by_currency: list[Group] = field(default_factory=list)  # plan = "*"
    gained: list[InvoiceSummary] = field(default_factory=list)  # invoiced now, not in the previous period
    lost: list[InvoiceSummary] = field(default_factory=list)  # invoiced in the previous period, not now
    top: list[InvoiceSummary] = field(default_factory=list)  # per currency, biggest revenue first


def change_percent(now: int, before: int) -> Decimal | None:
    if not before:
        return None
    return (Decimal(now - before) * 100 / Decimal(before)).quantize(Decimal("0.1"))


def revenue(
    period: str, previous_period: str, now: Sequence[InvoiceSummary], before: Sequence[InvoiceSummary], top: int = 10
) -> Revenue:
    report = Revenue(period, previous_period)
    groups: dict[tuple[str, str], Group] = {}
    currencies: dict[str, Group] = {}

    def group(plan: str, currency: str) -> tuple[Group, Group]:
        if (plan, currency) not in groups:
            groups[(plan, currency)] = Group(plan, currency)
        if currency not in currencies:
            currencies[currency] = Group("*", currency)
        return groups[(plan, currency)], currencies[currency]

    for inv in now:
        for g in group(inv.plan, inv.currency):
            g.invoices += 1
            g.revenue_minor += inv.subtotal_minor
            g.tax_minor += inv.tax_minor
            g.total_minor += inv.total_minor
            g.credited_minor += inv.credited_minor
            g.usage_minor += inv.usage_minor
            g.promotional_minor += inv.promotional_minor
            g.purchased_minor += inv.purchased_minor
            g.cash_due_minor += inv.cash_due_minor
    for inv in before:
        for g in group(inv.plan, inv.currency):
            g.previous_invoices += 1
            g.previous_revenue_minor += inv.subtotal_minor
    report.by_plan = sorted(groups.values(), key=lambda g: (g.currency, -g.revenue_minor, g.plan))
    report.by_currency = sorted(currencies.values(), key=lambda g: g.currency)
    now_tenants = {inv.tenant for inv in now}
    before_tenants = {inv.tenant for inv in before}
    report.gained = sorted((i for i in now if i.tenant not in before_tenants), key=lambda i: i.tenant)
    report.lost = sorted((i for i in before if i.tenant not in now_tenants), key=lambda i: i.tenant)
    by_currency: dict[str, list[InvoiceSummary]] = defaultdict(list)
    for inv in now:
        by_currency[inv.currency].append(inv)
    for currency in sorted(by_currency):
        ranked = sorted(by_currency[currency], key=lambda i: (-i.subtotal_minor, i.tenant))
        report.top.extend(ranked[:top])
    return report


BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: int, largest: int, width: int = 30) -> str:
    """A horizontal bar in eighths of a character cell (no colour needed)."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = round(value * width * 8 / largest)
    full, rest = divmod(max(eighths, 1), 8)
    return "█" * full + (BLOCKS[rest] if rest else "")
