"""``usage aggregate``: drain or follow the stream(s), the reader thread feeding the writer."""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable

from billctl.services.aggregate.dry_run import dry_run_report
from billctl.services.aggregate.names import check_claim_interval, client_for_thread, consumer_name, stream_names
from billctl.services.aggregate.parser import Chunk
from billctl.services.aggregate.reader import DONE, IDLE, Reader
from billctl.services.aggregate.report import AggregateReport
from billctl.services.aggregate.writer import Writer, load_tenants
from billctl.services.context import App
from billctl.stream.redis_stream import StreamClient


def aggregate(
    app: App,
    *,
    follow: bool = False,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[AggregateReport], None] | None = None,
    max_events: int | None = None,
    consumer: str | None = None,
) -> AggregateReport:
    """Drain (default) or follow the configured stream(s). ``stop`` ends the run after the batch in
    flight (SIGTERM). ``max_events`` stops after about that many entries (tests, sampling).
    ``consumer`` names this reader in the group (default: ``stream.consumer``, else host and pid); a
    reader that comes back under the same name takes back what its killed predecessor left pending."""
    stop = stop or threading.Event()
    load_tenants(app)  # the database first: a schema problem must not leave a group behind in Redis
    client = StreamClient(app.config.redis_url)
    client.ping()
    try:
        if dry_run:
            return dry_run_report(app, client, progress, max_events)
        return _run(app, client, follow, stop, progress, max_events, consumer)
    finally:
        client.close()


def _run(
    app: App,
    client: StreamClient,
    follow: bool,
    stop: threading.Event,
    progress: Callable[[AggregateReport], None] | None,
    max_events: int | None,
    consumer: str | None = None,
) -> AggregateReport:
    streams = stream_names(app)
    group, consumer = app.config.stream.group, consumer or consumer_name(app)
    batch_events = app.config.stream.batch_events
    flush_after = check_claim_interval(app) / 1000
    for stream in streams:
        client.ensure_group(stream, group)
    report = AggregateReport()
    started = time.monotonic()
    writer = Writer(app, client, report)
    reader_stop = threading.Event()
    reader = Reader(
        client_for_thread(app), app, streams, consumer, follow, reader_stop, batch_events, writer.parser, max_events
    )
    thresholds = gc.get_threshold()
    gc.freeze()  # the long-lived objects so far are never garbage: keep the collector off them
    gc.set_threshold(200_000, 50, 50)  # batches allocate millions of short-lived objects (no cycles)
    reader.start()
    try:
        pending: list[Chunk] = []
        size = 0
        first_at = 0.0  # when the batch's first chunk reached the writer
        reader_done = False
        while not reader_done:
            wait = max(0.0, first_at + flush_after - time.monotonic()) if pending else None
            try:
                item = reader.queue.get(timeout=wait)
            except queue.Empty:
                item = None  # the batch has waited stream.flush_ms: commit what there is
            if item is DONE:
                reader_done = True
            elif item is not None and item is not IDLE:
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                size += len(item.ids)
            limit_hit = max_events is not None and report.read + size >= max_events
            due = item is None or item is IDLE or time.monotonic() - first_at >= flush_after
            flush = size >= batch_events or due or reader_done or limit_hit
            if flush and pending:
                writer.write(pending)
                pending, size = [], 0
                report.seconds = time.monotonic() - started
                if progress:
                    progress(report)
            if (stop.is_set() or limit_hit) and not reader_stop.is_set():
                reader_stop.set()  # finish what was read: the reader stops, the queue is drained
        if reader.error is not None:
            raise reader.error
        for stream in streams:
            client.delete_idle_consumers(
                stream, group, idle_ms=max(app.config.stream.claim_idle_ms, 86_400_000), keep=consumer
            )
    finally:
        reader_stop.set()
        reader.join(timeout=10)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    report.seconds = time.monotonic() - started
    return report
