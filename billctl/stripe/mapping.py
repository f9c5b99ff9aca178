"""Pure rules of the Stripe integration: plain data in, plain data out, no I/O.

What a tenant looks like as a Stripe customer, a local invoice line as a Stripe invoice item,
the idempotency key of every write (derived from local ids, the step and a digest of what is sent,
DESIGN.md invariant 9), what a Stripe draft must look like before it may be finalized (invariant
10), how a Stripe invoice's state maps to the local payment status, and the reconciliation diff.

Amounts: local invoices hold billctl's minor units; Stripe's API amounts follow Stripe's rules for
the currency (``billctl.core.money.to_stripe_amount``: UGX is sent ×100, for instance).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billctl.core.money import MoneyError, format_amount, from_stripe_amount, to_stripe_amount

META_INVOICE = "billctl_invoice"  # on Stripe invoices and invoice items: the local invoice number
META_LINE = "billctl_line"  # on invoice items: the line's position on the local invoice
META_TENANT = "tenant_id"  # on customers (and invoices): the tenant key gateways send
DESCRIPTION_MAX = 500

# Stripe's minimum charge per currency (in Stripe's API units, compared with amounts as sent), for
# the ones billctl's samples use; an invoice below it is still a Stripe document: Stripe marks it
# paid and carries the amount over to the customer's balance instead of charging.
MINIMUM_CHARGE_MINOR = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "jpy": 50, "chf": 50}


# ---------------------------------------------------------------- idempotency keys


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:-]", "_", text)[:120]


# Every key carries a digest of the parameters it is sent with, so a resend after a local edit is
# a new request (never Stripe's idempotency_error), while a retry of the same request, minutes or
# hours later, replays Stripe's first answer instead of acting twice. What makes a changed resend
# safe differs per object:
# - invoices and items: push looks the draft and its items up by metadata (Stripe's list endpoints,
#   which are consistent) before creating anything an earlier run may have created;
# - customers: the create sends only what never changes for a tenant (its metadata), so its key is
#   stable and dedupes any retry within Stripe's 24 hours (after that, the lookup by metadata finds
#   the customer); name and email follow as an update.


def customer_create_key(tenant_key: str, params: Mapping[str, Any], replacing: str | None = None) -> str:
    """``replacing``: the id of a customer deleted in Stripe that this one replaces (a new key, or
    Stripe would replay the deleted customer's creation for a day)."""
    suffix = f"-replacing-{_safe(replacing)}" if replacing else ""
    return f"billctl-tenant-{_safe(tenant_key)}-customer-create{suffix}-{_digest(params)}"


def customer_update_key(
    tenant_key: str, customer_id: str, before: Mapping[str, Any], wanted: Mapping[str, Any], edited: str | None
) -> str:
    """The digest covers which customer, the customer as Stripe had it, the full wanted state and
    when the tenant was last edited locally: a→b→a→b within a day is three different updates (not a
    replay of the first one), and a retry of the same update replays."""
    return f"billctl-tenant-{_safe(tenant_key)}-customer-update-" + _digest(
        {"customer": customer_id, "before": before, "wanted": wanted, "edited": edited}
    )


def invoice_key(number: str, step: str, params: Mapping[str, Any] | None = None) -> str:
    """``step``: create | finalize | void | delete."""
    return f"billctl-inv-{_safe(number)}-{step}" + (f"-{_digest(params)}" if params is not None else "")


def item_key(number: str, position: int, params: Mapping[str, Any]) -> str:
    return f"billctl-inv-{_safe(number)}-item-{position}-{_digest(params)}"


def _digest(params: Mapping[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- customers


def customer_create_params(tenant_key: str) -> dict[str, Any]:
    """What a new customer is created with: only what never changes for the tenant (see the keys)."""
    return {"metadata": {META_TENANT: tenant_key, "billctl": "tenant"}}


def customer_view(remote: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Stripe customer billctl manages (for the update key)."""
    meta = remote.get("metadata") or {}
    return {
        "name": remote.get("name"),
        "email": remote.get("email"),
        "metadata": {k: meta.get(k) for k in (META_TENANT, "billctl")},
    }


def customer_params(tenant_key: str, name: str, email: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": name or tenant_key,
        "metadata": {META_TENANT: tenant_key, "billctl": "tenant"},
    }
    if email:
        params["email"] = email
    return params


def customer_changes(remote: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The update that makes ``remote`` match ``wanted`` (empty: nothing to do)."""
    changes: dict[str, Any] = {}
    for name in ("name", "email"):
        if name in wanted and remote.get(name) != wanted[name]:
            changes[name] = wanted[name]
    meta = remote.get("metadata") or {}
    missing = {k: v for k, v in wanted.get("metadata", {}).items() if meta.get(k) != v}
    if missing:
        changes["metadata"] = missing
    return changes


def customer_search_query(tenant_key: str) -> str:
    escaped = tenant_key.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{META_TENANT}']:'{escaped}'"


def pick_customer(found: Iterable[Mapping[str, Any]], tenant_key: str) -> tuple[Mapping[str, Any] | None, int]:
    """The oldest live customer carrying the tenant's metadata, and how many there are."""
    live = [c for c in found if not c.get("deleted") and (c.get("metadata") or {}).get(META_TENANT) == tenant_key]
    live.sort(key=lambda c: (c.get("created", 0), c["id"]))
    return (live[0] if live else None), len(live)


# ---------------------------------------------------------------- invoices and items


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
    """Raises MoneyError for an amount Stripe cannot charge in the currency."""
    return {
        "customer": customer_id,
        "invoice": stripe_invoice_id,
        "amount": to_stripe_amount(line.amount_minor, inv.currency),
        "currency": inv.currency.lower(),
        "discountable": False,  # no Stripe discount may touch billctl's amounts (its tax line above all)
        "description": item_description(line, inv.currency),
        "period": line_period(inv, line),
        "metadata": {META_INVOICE: inv.number, META_LINE: str(line.position), "kind": line.kind},
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
    currency, nothing else on the draft), subtotal, Stripe's discounts and tax, total. The customer
    balance is not part of a draft's total (Stripe applies it at finalization)."""
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
    extra = sorted(set(by_position) - {line.position for line in inv.lines})
    if extra:
        diffs.append(f"items for lines {extra}, which the invoice does not have")
    foreign = [i["id"] for i in items if not _ours(i, inv.number)]
    if foreign:
        diffs.append(f"items billctl did not add: {', '.join(foreign)}")
    expected = to_stripe_amount(inv.total_minor, inv.currency)
    if draft.get("subtotal") != expected:
        diffs.append(f"subtotal {show_amount(draft.get('subtotal'), cur)} instead of {show_amount(expected, cur)}")
    discounted = sum(int(d.get("amount") or 0) for d in draft.get("total_discount_amounts") or [])
    applied = [d if isinstance(d, str) else d.get("id", "?") for d in draft.get("discounts") or []]
    if discounted or applied:
        diffs.append(
            f"Stripe discounts of {show_amount(discounted, cur)}" + (f" ({', '.join(applied)})" if applied else "")
        )
    tax = sum(int(t.get("amount") or 0) for t in draft.get("total_taxes") or [])
    if tax:
        diffs.append(f"Stripe tax of {show_amount(tax, cur)} (billctl's tax is its own line)")
    if (draft.get("automatic_tax") or {}).get("enabled"):
        diffs.append("Stripe's automatic tax is on")
    if draft.get("total") != expected:
        diffs.append(f"total {show_amount(draft.get('total'), cur)} instead of {show_amount(expected, cur)}")
    return diffs


def balance_applied(remote: Mapping[str, Any]) -> int:
    """What the customer's Stripe balance changed on a finalized invoice: amount_due − total
    (negative: a credit reduced what is collected). Not a difference from billctl's invoice."""
    if remote.get("status") in (None, "draft") or remote.get("amount_due") is None or remote.get("total") is None:
        return 0
    return int(remote["amount_due"]) - max(int(remote["total"]), 0)


def match_invoices(remote: Iterable[Mapping[str, Any]], number: str) -> list[Mapping[str, Any]]:
    """Stripe invoices made for local invoice ``number`` (deleted drafts excluded), oldest first."""
    found = [i for i in remote if not i.get("deleted") and (i.get("metadata") or {}).get(META_INVOICE) == number]
    return sorted(found, key=lambda i: (i.get("created", 0), i["id"]))


def below_minimum(currency: str, amount_minor: int) -> bool:
    minimum = MINIMUM_CHARGE_MINOR.get(currency.lower())
    return minimum is not None and 0 < amount_minor < minimum


# ---------------------------------------------------------------- payment status

STATUS_RANK = {"draft": 0, "open": 1, "payment_failed": 2, "paid": 3, "void": 3, "uncollectible": 3}
ATTENTION = {"payment_failed", "uncollectible"}


@dataclass(frozen=True)
class PaymentState:
    status: str  # draft | open | payment_failed | paid | uncollectible | void
    attempt_count: int
    next_payment_attempt: datetime | None


def payment_state(invoice: Mapping[str, Any], event_type: str | None = None) -> PaymentState:
    status = invoice.get("status") or "draft"
    attempts = int(invoice.get("attempt_count") or 0)
    nxt = invoice.get("next_payment_attempt")
    if status == "open" and (
        event_type == "invoice.payment_failed" or (attempts > 0 and (invoice.get("amount_remaining") or 0) > 0)
    ):
        status = "payment_failed"
    return PaymentState(status, attempts, datetime.fromtimestamp(nxt, UTC) if nxt else None)


def newer(current_at: int | None, current_status: str | None, event_at: int, new_status: str) -> bool:
    """Apply an event only if it is not older than what was applied (events can arrive out of order);
    within the same second, never step back from a settled state to an earlier one."""
    if current_at is None or current_status is None:
        return True
    if event_at != current_at:
        return event_at > current_at
    return STATUS_RANK.get(new_status, 0) >= STATUS_RANK.get(current_status, 0)


# ---------------------------------------------------------------- reconcile


@dataclass(frozen=True)
class LocalInvoice:
    number: str
    tenant_key: str
    currency: str
    total_minor: int
    status: str  # local: finalized | void
    stripe_invoice_id: str | None
    stripe_status: str | None  # also "deleted": a void invoice whose Stripe draft push deleted
    stripe_error: str | None = None  # why the last push failed


@dataclass(frozen=True)
class Drift:
    number: str
    tenant_key: str
    kind: str  # missing | duplicate | amount | status | incomplete | orphan | id
    detail: str
    stripe_ids: tuple[str, ...] = field(default=())


def _expected_remote(local_status: str) -> set[str]:
    return {"void"} if local_status == "void" else {"open", "paid", "uncollectible"}


def reconcile(local: Iterable[LocalInvoice], remote: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Differences between local invoices and the Stripe invoices carrying billctl metadata."""
    by_number: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for inv in remote:
        number = (inv.get("metadata") or {}).get(META_INVOICE)
        if number and not inv.get("deleted"):
            by_number[number].append(inv)
    drifts: list[Drift] = []
    seen: set[str] = set()
    for inv in local:
        seen.add(inv.number)
        matches = sorted(by_number.get(inv.number, []), key=lambda i: (i.get("created", 0), i["id"]))
        ids = tuple(m["id"] for m in matches)
        if not matches:
            if inv.status == "void" and inv.stripe_status == "deleted":
                continue  # its Stripe draft was deleted: nothing to collect, nothing to report
            if inv.status != "void" or inv.stripe_invoice_id:
                where = f"stored id {inv.stripe_invoice_id} not found" if inv.stripe_invoice_id else "never pushed"
                drifts.append(Drift(inv.number, inv.tenant_key, "missing", f"not in Stripe ({where})"))
            continue
        if len(matches) > 1:
            drifts.append(
                Drift(inv.number, inv.tenant_key, "duplicate", f"{len(matches)} Stripe invoices: {', '.join(ids)}", ids)
            )
        remote_inv = next((m for m in matches if m["id"] == inv.stripe_invoice_id), matches[0])
        if inv.stripe_invoice_id and inv.stripe_invoice_id != remote_inv["id"]:
            drifts.append(Drift(inv.number, inv.tenant_key, "id", f"stored id {inv.stripe_invoice_id} not found", ids))
        elif not inv.stripe_invoice_id:
            drifts.append(Drift(inv.number, inv.tenant_key, "id", f"Stripe id {remote_inv['id']} not stored", ids))
        if remote_inv.get("status") == "draft":
            drifts.append(
                Drift(
                    inv.number,
                    inv.tenant_key,
                    "incomplete",
                    "still a draft in Stripe (re-run push"
                    + (f"; last push: {inv.stripe_error})" if inv.stripe_error else ")"),
                    (remote_inv["id"],),
                )
            )
            continue
        expected = to_stripe_amount(inv.total_minor, inv.currency, check=False)
        remote_currency = (remote_inv.get("currency") or "").lower()
        if remote_currency != inv.currency.lower() or remote_inv.get("total") != expected:
            drifts.append(
                Drift(
                    inv.number,
                    inv.tenant_key,
                    "amount",
                    f"local {show_amount(expected, inv.currency)}, Stripe "
                    + (show_amount(remote_inv.get("total"), remote_currency) if remote_currency else "?"),
                    (remote_inv["id"],),
                )
            )
        remote_status = remote_inv.get("status") or ""
        if remote_status not in _expected_remote(inv.status):
            drifts.append(
                Drift(
                    inv.number,
                    inv.tenant_key,
                    "status",
                    f"local {inv.status}, Stripe {remote_status}",
                    (remote_inv["id"],),
                )
            )
        else:
            local_view = inv.stripe_status
            settled = payment_state(remote_inv).status
            if local_view is not None and local_view != settled:
                drifts.append(
                    Drift(
                        inv.number,
                        inv.tenant_key,
                        "status",
                        f"recorded {local_view}, Stripe {settled} (run sync-status)",
                        (remote_inv["id"],),
                    )
                )
    for number, matches in sorted(by_number.items()):
        if number not in seen:
            ids = tuple(m["id"] for m in matches)
            drifts.append(Drift(number, "", "orphan", "in Stripe, unknown locally", ids))
    return drifts
