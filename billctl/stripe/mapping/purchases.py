"""A prepaid credits purchase (issue 13) as a one-off Stripe invoice: one item, untaxed, nothing
discountable, found again by ``metadata[billctl_credit_purchase]``; and what its draft must look like
before it may be finalized (DESIGN.md invariant 10, as for invoices).

Amounts: the purchase holds billctl's minor units; Stripe's API amounts follow Stripe's rules for the
currency (``billctl.core.money.to_stripe_amount``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billctl.core.money import format_amount, from_minor, to_stripe_amount
from billctl.stripe.mapping.invoices import DESCRIPTION_MAX, show_amount, stripe_discounts, stripe_tax
from billctl.stripe.mapping.metadata import META_CREDIT_PURCHASE, META_TENANT


@dataclass(frozen=True)
class PurchaseIn:
    id: int
    tenant_key: str
    tenant_name: str
    currency: str
    amount_minor: int
    reason: str = ""
    expires_at: datetime | None = None

    @property
    def ref(self) -> str:
        """How reports name the purchase."""
        return f"credit-purchase-{self.id}"


def purchase_of(obj: Mapping[str, Any]) -> int | None:
    """The local purchase id a Stripe invoice (or item) was made for, else None."""
    value = str((obj.get("metadata") or {}).get(META_CREDIT_PURCHASE) or "")
    return int(value) if value.isdigit() else None


def _amount(p: PurchaseIn) -> str:
    return f"{format_amount(from_minor(p.amount_minor, p.currency), p.currency)} {p.currency.upper()}"


def purchase_description(p: PurchaseIn) -> str:
    text = f"Prepaid credits purchase {p.id}: {_amount(p)} of credits for {p.tenant_name or p.tenant_key}"
    return text[:DESCRIPTION_MAX]


def item_description(p: PurchaseIn) -> str:
    expiry = f", valid until {p.expires_at:%Y-%m-%d}" if p.expires_at else ""
    reason = f" ({p.reason})" if p.reason else ""
    return f"Prepaid credits: {_amount(p)}{expiry}{reason}"[:DESCRIPTION_MAX]


def purchase_invoice_params(
    p: PurchaseIn, customer_id: str, collection_method: str, days_until_due: int
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "customer": customer_id,
        "currency": p.currency.lower(),
        "collection_method": collection_method,
        "auto_advance": False,  # billctl finalizes once the item is on and the draft checked
        "pending_invoice_items_behavior": "exclude",
        "discounts": "",  # no customer discount inherited (invariant 10)
        "automatic_tax": {"enabled": False},  # a purchase of credits is untaxed: usage is taxed when billed
        "description": purchase_description(p),
        "metadata": {META_CREDIT_PURCHASE: str(p.id), META_TENANT: p.tenant_key},
    }
    if collection_method == "send_invoice":
        params["days_until_due"] = days_until_due
    return params


def purchase_item_params(p: PurchaseIn, customer_id: str, stripe_invoice_id: str) -> dict[str, Any]:
    """Raises MoneyError for an amount Stripe cannot charge in the currency."""
    return {
        "customer": customer_id,
        "invoice": stripe_invoice_id,
        "amount": to_stripe_amount(p.amount_minor, p.currency),
        "currency": p.currency.lower(),
        "discountable": False,
        "description": item_description(p),
        "metadata": {META_CREDIT_PURCHASE: str(p.id), "kind": "credit_purchase"},
    }


def match_purchase_invoices(remote: Iterable[Mapping[str, Any]], purchase_id: int) -> list[Mapping[str, Any]]:
    """Stripe invoices made for the purchase (deleted drafts excluded), oldest first."""
    found = [i for i in remote if not i.get("deleted") and purchase_of(i) == purchase_id]
    return sorted(found, key=lambda i: (i.get("created", 0), i["id"]))


def purchase_draft_differences(
    p: PurchaseIn, draft: Mapping[str, Any], items: Iterable[Mapping[str, Any]]
) -> list[str]:
    """How a purchase's Stripe draft differs from the purchase (empty: it may be finalized): its
    currency, exactly one item of the purchase's amount, not discountable, nothing else on it, no
    Stripe discount or tax, subtotal and total equal to the amount."""
    cur = p.currency.lower()
    wanted = to_stripe_amount(p.amount_minor, p.currency)
    diffs: list[str] = []
    items = list(items)
    if (draft.get("currency") or "").lower() != cur:
        diffs.append(f"currency {(draft.get('currency') or '?').upper()} instead of {p.currency.upper()}")
    ours = [i for i in items if purchase_of(i) == p.id]
    foreign = [i["id"] for i in items if purchase_of(i) != p.id]
    if not ours:
        diffs.append("the credits item is missing")
    elif len(ours) > 1:
        diffs.append(f"the credits item is there {len(ours)} times ({', '.join(i['id'] for i in ours)})")
    elif ours[0].get("amount") != wanted:
        diffs.append(
            f"the credits item is {show_amount(ours[0].get('amount'), cur)} instead of {show_amount(wanted, cur)}"
        )
    elif ours[0].get("discountable"):
        diffs.append("the credits item is discountable in Stripe")
    if foreign:
        diffs.append(f"items billctl did not add: {', '.join(foreign)}")
    if discounts := stripe_discounts(draft, cur):
        diffs.append(discounts)
    if stripe_tax(draft) or (draft.get("automatic_tax") or {}).get("enabled"):
        diffs.append("Stripe would add tax to a credits purchase")
    for total in ("subtotal", "total"):
        if draft.get(total) != wanted:
            diffs.append(f"{total} {show_amount(draft.get(total), cur)} instead of {show_amount(wanted, cur)}")
    return diffs
