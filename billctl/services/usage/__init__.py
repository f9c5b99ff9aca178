"""Usage in: events -> usage buckets, each (tenant, event_id) counted once.

- ``events``: tenant info, dedupe key, the event time window, the run report, the bucket size check
- ``counting``: ``apply_events`` inside the caller's transaction (DESIGN.md invariant 1)
- ``late``: events for a finalized period, recorded for the next invoice's adjustment
- ``parsing``: NDJSON event files and Envoy/Istio access logs, line by line
- ``imports``: ``usage import`` of such a file, batch by batch

The stream reader lives in ``billctl.services.aggregate``; listings and pruning in
``billctl.services.usage_views``.
"""

from billctl.db.repositories.tenants import TenantInfo, lock_tenants, tenant_directory
from billctl.db.repositories.usage import usage_totals
from billctl.services.usage.counting import apply_events, upsert_buckets
from billctl.services.usage.events import UsageReport, check_alignment, event_key, event_window
from billctl.services.usage.imports import BATCH, import_events
from billctl.services.usage.parsing import MAX_LINE_BYTES, parse_envoy, parse_ndjson, status_matcher

__all__ = [
    "BATCH",
    "MAX_LINE_BYTES",
    "TenantInfo",
    "UsageReport",
    "apply_events",
    "check_alignment",
    "event_key",
    "event_window",
    "import_events",
    "lock_tenants",
    "parse_envoy",
    "parse_ndjson",
    "status_matcher",
    "tenant_directory",
    "upsert_buckets",
    "usage_totals",
]
