"""What a tenant looks like as a Stripe customer, and how its customer is recognised."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from billctl.stripe.mapping.metadata import META_TENANT


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
