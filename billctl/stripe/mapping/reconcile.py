"""The reconciliation diff: local invoices against the Stripe invoices carrying billctl metadata."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import to_stripe_amount
from billctl.stripe.mapping.invoices import show_amount
from billctl.stripe.mapping.metadata import META_INVOICE
from billctl.stripe.mapping.payment import payment_state
from billctl.stripe.status import FINAL, StripeStatus


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


def _expected_remote(local_status: str) -> frozenset[str]:
    return frozenset({StripeStatus.VOID}) if local_status == InvoiceStatus.VOID else FINAL


def reconcile(local: Iterable[LocalInvoice], remote: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Differences between local invoices and the Stripe invoices carrying billctl metadata."""
    by_number: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for found in remote:
        number = (found.get("metadata") or {}).get(META_INVOICE)
        if number and not found.get("deleted"):
            by_number[number].append(found)
    drifts: list[Drift] = []
    seen: set[str] = set()
    for inv in local:
        seen.add(inv.number)
        matches = sorted(by_number.get(inv.number, []), key=lambda i: (i.get("created", 0), i["id"]))
        ids = tuple(m["id"] for m in matches)
        if not matches:
            if inv.status == InvoiceStatus.VOID and inv.stripe_status == StripeStatus.DELETED:
                continue  # its Stripe draft was deleted: nothing to collect, nothing to report
            if inv.status != InvoiceStatus.VOID or inv.stripe_invoice_id:
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
        if remote_inv.get("status") == StripeStatus.DRAFT:
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
