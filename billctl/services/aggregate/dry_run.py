"""``usage aggregate --dry-run``: what a real run would count now, on the same path, nothing kept."""

from __future__ import annotations

import time
from collections.abc import Callable

from billctl.services.aggregate.names import stream_names
from billctl.services.aggregate.parser import Chunk, Parser
from billctl.services.aggregate.report import AggregateReport
from billctl.services.aggregate.writer import count_chunks, load_tenants
from billctl.services.context import App
from billctl.stream.redis_stream import StreamClient


def dry_run_report(
    app: App,
    client: StreamClient,
    progress: Callable[[AggregateReport], None] | None,
    max_events: int | None,
) -> AggregateReport:
    """What a real run would count now: the entries the group has not been given yet, read with
    XRANGE (no group state changes, no ack, no trim) and counted in ONE transaction that is rolled
    back at the end (so a duplicate across batches is still seen as one)."""
    report = AggregateReport()
    started = time.monotonic()
    group = app.config.stream.group
    tenants = load_tenants(app)
    parser = Parser(app, tenants)
    # invariant 6: the same path as the real run, in one transaction that is rolled back at the end
    with app.uow(dry_run=True) as uow:
        conn = uow.connection
        for stream in stream_names(app):
            info = client.group(stream, group)
            after = info.last_delivered if info else "0-0"
            report.pending += info.pending if info else 0
            while max_events is None or report.read < max_events:
                entries = client.range_after(stream, after, min(app.config.stream.batch_events, 10_000))
                if not entries:
                    break
                after = entries[-1][0].decode()
                counted, tenants = count_chunks(conn, [Chunk(stream, entries)], tenants, app, parser)
                counted.dead_lettered = len(counted.rejected)
                counted.batches = 1
                report.merge(counted)
                report.seconds = time.monotonic() - started
                if progress:
                    progress(report)
    report.seconds = time.monotonic() - started
    return report
