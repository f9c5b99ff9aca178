"""``usage import``: a file of events or access-log lines, in batches of ``BATCH``, one transaction
per batch."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import cast

from billctl.core.bounds import quote
from billctl.core.events import Event, EventError
from billctl.db.repositories.tenants import tenant_directory
from billctl.errors import BadInput
from billctl.services.context import App
from billctl.services.usage.counting import apply_events
from billctl.services.usage.events import TenantInfo, UsageReport, check_alignment, event_window
from billctl.services.usage.parsing import detect_format, parse_envoy, parse_ndjson, status_matcher

BATCH = 5_000


def import_events(
    app: App,
    path: str,
    *,
    dry_run: bool = False,
    progress: Callable[[UsageReport], None] | None = None,
    fmt: str = "auto",
) -> UsageReport:
    """Import a file (``-`` = stdin) in batches, one transaction per batch. ``fmt``: ``events``
    (the stream contract as NDJSON), ``envoy`` (Envoy/Istio JSON access logs) or ``auto``."""
    bucket_seconds = app.config.usage.bucket_seconds
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        hint = "give an NDJSON file, or - for stdin"
        raise BadInput(f"cannot read {quote(path)}: {exc.strerror}", hint=hint) from None
    # a file or stdin is buffered already; anything else (a test's BytesIO) is wrapped so it can peek
    handle: io.BufferedReader = (
        cast(io.BufferedReader, raw) if hasattr(raw, "peek") else io.BufferedReader(cast(io.RawIOBase, raw))
    )
    report = UsageReport()
    window = event_window(app.config.usage)
    with handle:
        with app.uow(readonly=True) as uow:
            tenants = tenant_directory(uow.connection)
        check_alignment(tenants, bucket_seconds)
        batch: list[tuple[str, Event]] = []
        source = "-" if path == "-" else path
        if fmt == "auto":
            fmt = detect_format(handle)
        if fmt == "envoy":
            matcher = status_matcher(app.config.gateway.billable_statuses)
            items = parse_envoy(handle, source, app.config.gateway.tenant_field, matcher, window)
        else:
            items = parse_ndjson(handle, source, window)
        for where, item in items:
            if item is None:
                report.not_billable += 1
                continue
            if isinstance(item, EventError):
                report.read += 1
                report.reject(where, str(item))
                continue
            batch.append((where, item))
            if len(batch) >= BATCH:
                report.merge(_apply_batch(app, batch, tenants, bucket_seconds, dry_run))
                if progress:
                    progress(report)
                batch = []
        if batch:
            report.merge(_apply_batch(app, batch, tenants, bucket_seconds, dry_run))
            if progress:
                progress(report)
    return report


def _apply_batch(
    app: App, batch: list[tuple[str, Event]], tenants: dict[str, TenantInfo], bucket_seconds: int, dry_run: bool
) -> UsageReport:
    # a dry run takes the same code path as the real run and rolls back: nothing is kept
    with app.uow(dry_run=dry_run) as uow:
        return apply_events(uow.connection, batch, tenants, bucket_seconds)
