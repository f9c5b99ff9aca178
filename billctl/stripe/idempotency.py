"""Every idempotency key billctl sends to Stripe, derived in one place (DESIGN.md invariant 9).

A key is derived from local ids, the step and a digest of the parameters it is sent with, so a
resend after a local edit is a new request (never Stripe's idempotency_error), while a retry of the
same request, minutes or hours later, replays Stripe's first answer instead of acting twice. What
makes a changed resend safe differs per object:

- invoices and items: push looks the draft and its items up by metadata (Stripe's list endpoints,
  which are consistent) before creating anything an earlier run may have created;
- customers: the create sends only what never changes for a tenant (its metadata), so its key is
  stable and dedupes any retry within Stripe's 24 hours (after that, the lookup by metadata finds
  the customer); name and email follow as an update;
- credit notes: what is still due may change between two tries, so the amounts are in the digest;
- credits purchases (a one-off invoice and its one item): as invoices, found again by
  ``metadata[billctl_credit_purchase]`` before anything is created again.

The keys are stored state's twins (Stripe remembers them for a day) and tests pin them: changing the
text of one is a change of behaviour (tests/unit/test_idempotency_keys.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:-]", "_", text)[:120]


def digest(params: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the parameters as sorted JSON."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def customer_create_key(tenant_key: str, params: Mapping[str, Any], replacing: str | None = None) -> str:
    """``replacing``: the id of a customer deleted in Stripe that this one replaces (a new key, or
    Stripe would replay the deleted customer's creation for a day)."""
    suffix = f"-replacing-{_safe(replacing)}" if replacing else ""
    return f"billctl-tenant-{_safe(tenant_key)}-customer-create{suffix}-{digest(params)}"


def customer_update_key(
    tenant_key: str, customer_id: str, before: Mapping[str, Any], wanted: Mapping[str, Any], edited: str | None
) -> str:
    """The digest covers which customer, the customer as Stripe had it, the full wanted state and
    when the tenant was last edited locally: a→b→a→b within a day is three different updates (not a
    replay of the first one), and a retry of the same update replays."""
    return f"billctl-tenant-{_safe(tenant_key)}-customer-update-" + digest(
        {"customer": customer_id, "before": before, "wanted": wanted, "edited": edited}
    )


def resend_key(key: str) -> str:
    """A fresh key for an update Stripe answered as a replay of an earlier request: sending the same
    values again is harmless, not sending them is not (random: it must never replay)."""
    return f"{key}-again-{secrets.token_hex(6)}"


def invoice_key(number: str, step: str, params: Mapping[str, Any] | None = None) -> str:
    """``step``: create | finalize | void | delete."""
    return f"billctl-inv-{_safe(number)}-{step}" + (f"-{digest(params)}" if params is not None else "")


def item_key(number: str, position: int, params: Mapping[str, Any]) -> str:
    return f"billctl-inv-{_safe(number)}-item-{position}-{digest(params)}"


def credit_note_key(number: str, params: Mapping[str, Any]) -> str:
    """The create key: local number, step, and a digest of the parameters (what is still due may
    change between two tries; a retry with other amounts must not be refused as a key reuse)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return f"billctl-cn-{number}-create-{hashlib.sha256(text.encode()).hexdigest()[:12]}"[:255]


def purchase_key(purchase_id: int, step: str, params: Mapping[str, Any] | None = None) -> str:
    """A credits purchase's one-off invoice (issue 13). ``step``: invoice | item | finalize. Like an
    invoice's: a create carries a digest of its parameters (push looks the invoice and its item up by
    metadata before creating them again), finalize none."""
    return f"billctl-credit-purchase-{int(purchase_id)}-{step}" + (f"-{digest(params)}" if params is not None else "")
