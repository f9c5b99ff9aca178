"""A local invoice as a Stripe invoice and its items, and what a Stripe draft must look like before it
may be finalized (DESIGN.md invariant 10).

Amounts: local invoices hold billctl's minor units; Stripe's API amounts follow Stripe's rules for
the currency (``billctl.core.money.to_stripe_amount``: UGX is sent ×100, for instance).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billctl.core.money import MoneyError, format_amount, from_stripe_amount, to_stripe_amount
from billctl.stripe.mapping.metadata import META_CREDIT_GRANT, META_INVOICE, META_LINE, META_TENANT
from billctl.stripe.status import StripeStatus

DESCRIPTION_MAX = 500

# Stripe's minimum charge per currency (in Stripe's API units, compared with amounts as sent), for
# the ones billctl's samples use; an invoice below it is still a Stripe document: Stripe marks it
# paid and carries the amount over to the customer's balance instead of charging.
MINIMUM_CHARGE_MINOR = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "jpy": 50, "chf": 50}

# a prepaid credit drawn (issue 13): a negative line, pushed as a negative, non-discountable item that
# names its grant, so that Stripe's total is billctl's (promotional ones before the tax line,
# purchased ones after it: Stripe adds them up the same way)
CREDIT_KIND = "credit"


@dataclass(frozen=True)
class LineIn:
    position: int
    kind: str
    description: str
    quantity: str
    unit_price: str | None
    amount_minor: int
    for_period: str | None = None
    # a plan segment's own service period (base, usage, minimum lines of a segment), UTC
    service_start: datetime | None = None
    service_end: datetime | None = None
    grant_id: int | None = None  # a credit line: the grant drawn on


@dataclass(frozen=True)
class InvoiceIn:
    number: str
    tenant_key: str
    tenant_name: str
    period: str
    currency: str
    total_minor: int
    period_start: datetime
    period_end: datetime
    timezone: str
    lines: tuple[LineIn, ...] = ()


def invoice_params(inv: InvoiceIn, customer_id: str, collection_method: str, days_until_due: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "customer": customer_id,
        "currency": inv.currency.lower(),
        "collection_method": collection_method,
        "auto_advance": False,  # billctl finalizes once every item is on; Stripe must not do it earlier
        "pending_invoice_items_behavior": "exclude",
        # Stripe adds nothing of its own (invariant 10): no customer discount inherited (the empty
        # string; an empty list would be dropped by the SDK and inherit), no tax of Stripe's
        "discounts": "",
        "automatic_tax": {"enabled": False},
        "description": f"{inv.number}: {inv.tenant_name or inv.tenant_key}, usage in {inv.period}",
        "metadata": {META_INVOICE: inv.number, META_TENANT: inv.tenant_key, "period": inv.period},
    }
    if collection_method == "send_invoice":
        params["days_until_due"] = days_until_due
    return params


def finalize_params() -> dict[str, Any]:
    # auto_advance: Stripe then collects as configured (charges the card, or emails the invoice)
    return {"auto_advance": True}


def _qty(text: str) -> str:
    number = Decimal(text)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number.normalize():f}"


def item_description(line: LineIn, currency: str) -> str:
    text = line.description
    if line.kind == "usage" and line.unit_price is not None and Decimal(line.quantity) != 0:
        text += f" [{_qty(line.quantity)} × {line.unit_price} {currency.upper()}]"
    return text[:DESCRIPTION_MAX]


def _epoch(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp())


def line_period(inv: InvoiceIn, line: LineIn) -> dict[str, int]:
    """The service period of a line in Stripe's form (inclusive end: the last second): its plan
    segment's, the period an adjustment belongs to, else the invoice's."""
    start, end = inv.period_start, inv.period_end
    if line.service_start is not None and line.service_end is not None:
        start, end = line.service_start, line.service_end
    elif line.for_period:
        from billctl.core.periods import Period

        start, end = Period.parse(line.for_period).bounds(inv.timezone)
    return {"start": _epoch(start), "end": max(_epoch(end) - 1, _epoch(start))}


def item_params(inv: InvoiceIn, line: LineIn, customer_id: str, stripe_invoice_id: str) -> dict[str, Any]:
    """Raises MoneyError for an amount Stripe cannot charge in the currency (negative amounts, the
    credit lines, follow the same rule: Stripe takes negative invoice items, which lower the total)."""
    metadata = {META_INVOICE: inv.number, META_LINE: str(line.position), "kind": line.kind}
    if line.kind == CREDIT_KIND and line.grant_id is not None:
        metadata[META_CREDIT_GRANT] = str(line.grant_id)
    return {
        "customer": customer_id,
        "invoice": stripe_invoice_id,
        "amount": to_stripe_amount(line.amount_minor, inv.currency),
        "currency": inv.currency.lower(),
        # no Stripe discount may touch billctl's amounts (its tax line above all), nor discount a credit
        "discountable": False,
        "description": item_description(line, inv.currency),
        "period": line_period(inv, line),
        "metadata": metadata,
    }


def items_by_position(items: Iterable[Mapping[str, Any]], number: str) -> dict[int, list[Mapping[str, Any]]]:
    found: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        meta = item.get("metadata") or {}
        if meta.get(META_INVOICE) == number and str(meta.get(META_LINE, "")).isdigit():
            found[int(meta[META_LINE])].append(item)
    return found


def show_amount(amount: int | None, currency: str) -> str:
    """A Stripe API amount for people: "44.00 USD"."""
    if amount is None:
        return "none"
    try:
        return f"{format_amount(from_stripe_amount(amount, currency), currency)} {currency.upper()}"
    except MoneyError:
        return f"{amount} {currency.upper()} (Stripe's units)"


def _ours(item: Mapping[str, Any], number: str) -> bool:
    meta = item.get("metadata") or {}
    return meta.get(META_INVOICE) == number and str(meta.get(META_LINE, "")).isdigit()


def draft_differences(inv: InvoiceIn, draft: Mapping[str, Any], items: Iterable[Mapping[str, Any]]) -> list[str]:
    """How a Stripe draft differs from the local invoice, in words (empty: it matches and may be
    finalized). Checked: currency, the item set (one item per local line, same amount and
    currency, a credit line's item not discountable and naming its grant, nothing else on the draft),
    subtotal, Stripe's discounts and tax, total. Credit lines are negative items: they count in the
    subtotal and total like any other. The customer balance is not part of a draft's total (Stripe
    applies it at finalization)."""
    cur = inv.currency.lower()
    diffs: list[str] = []
    items = list(items)
    if (draft.get("currency") or "").lower() != cur:
        diffs.append(f"currency {(draft.get('currency') or '?').upper()} instead of {inv.currency.upper()}")
    by_position = items_by_position(items, inv.number)
    for line in inv.lines:
        wanted = to_stripe_amount(line.amount_minor, inv.currency)
        found = by_position.get(line.position, [])
        if not found:
            diffs.append(f"line {line.position} ({line.kind}) is missing")
        elif len(found) > 1:
            diffs.append(f"line {line.position} is there {len(found)} times ({', '.join(i['id'] for i in found)})")
        elif (found[0].get("currency") or "").lower() != cur:
            diffs.append(f"line {line.position} is in {(found[0].get('currency') or '?').upper()}")
        elif found[0].get("amount") != wanted:
            diffs.append(
                f"line {line.position} ({line.kind}) is {show_amount(found[0].get('amount'), cur)} "
                f"instead of {show_amount(wanted, cur)}"
            )
        elif line.kind == CREDIT_KIND:  # a credit: never discountable, and it names its grant
            named = (found[0].get("metadata") or {}).get(META_CREDIT_GRANT)
            if found[0].get("discountable"):
                diffs.append(f"line {line.position} (credit) is discountable in Stripe")
            elif line.grant_id is not None and named != str(line.grant_id):
                diffs.append(f"line {line.position} (credit) names grant {named or 'none'} instead of {line.grant_id}")
    extra = sorted(set(by_position) - {line.position for line in inv.lines})
    if extra:
        diffs.append(f"items for lines {extra}, which the invoice does not have")
    foreign = [i["id"] for i in items if not _ours(i, inv.number)]
    if foreign:
        diffs.append(f"items billctl did not add: {', '.join(foreign)}")
    expected = to_stripe_amount(inv.total_minor, inv.currency)
    if draft.get("subtotal") != expected:
        diffs.append(f"subtotal {show_amount(draft.get('subtotal'), cur)} instead of {show_amount(expected, cur)}")
    if discounts := stripe_discounts(draft, cur):
        diffs.append(discounts)
    tax = stripe_tax(draft)
    if tax:
        diffs.append(f"Stripe tax of {show_amount(tax, cur)} (billctl's tax is its own line)")
    if (draft.get("automatic_tax") or {}).get("enabled"):
        diffs.append("Stripe's automatic tax is on")
    if draft.get("total") != expected:
        diffs.append(f"total {show_amount(draft.get('total'), cur)} instead of {show_amount(expected, cur)}")
    return diffs


def stripe_discounts(draft: Mapping[str, Any], cur: str) -> str | None:
    """What Stripe discounts on a draft (a coupon billctl did not ask for), or None."""
    discounted = sum(int(d.get("amount") or 0) for d in draft.get("total_discount_amounts") or [])
    applied = [d if isinstance(d, str) else d.get("id", "?") for d in draft.get("discounts") or []]
    if not (discounted or applied):
        return None
    return f"Stripe discounts of {show_amount(discounted, cur)}" + (f" ({', '.join(applied)})" if applied else "")


def stripe_tax(draft: Mapping[str, Any]) -> int:
    """The tax Stripe itself adds to a draft (billctl's own tax is an item, not this)."""
    return sum(int(t.get("amount") or 0) for t in draft.get("total_taxes") or [])


def balance_applied(remote: Mapping[str, Any]) -> int:
    """What the customer's Stripe balance changed on a finalized invoice: amount_due − total
    (negative: a credit reduced what is collected). Not a difference from billctl's invoice."""
    if (
        remote.get("status") in (None, StripeStatus.DRAFT)
        or remote.get("amount_due") is None
        or remote.get("total") is None
    ):
        return 0
    return int(remote["amount_due"]) - max(int(remote["total"]), 0)


def match_invoices(remote: Iterable[Mapping[str, Any]], number: str) -> list[Mapping[str, Any]]:
    """Stripe invoices made for local invoice ``number`` (deleted drafts excluded), oldest first."""
    found = [i for i in remote if not i.get("deleted") and (i.get("metadata") or {}).get(META_INVOICE) == number]
    return sorted(found, key=lambda i: (i.get("created", 0), i["id"]))


def below_minimum(currency: str, amount_minor: int) -> bool:
    minimum = MINIMUM_CHARGE_MINOR.get(currency.lower())
    return minimum is not None and 0 < amount_minor < minimum
