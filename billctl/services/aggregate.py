"""``usage aggregate``: the Redis Stream(s) to usage buckets, exactly once (DESIGN.md invariants 1, 2, 6).

One batch, in order:
1. entries come from XREADGROUP (new) and from claims: at start, this consumer's own pending
   entries (left by an earlier life under the same name); then, every ``stream.claim_idle_ms / 2``,
   entries idle that long with OTHER consumers (XPENDING IDLE + XCLAIM). A consumer never claims
   its own pending entries while it runs: they are in flight here, not abandoned;
2. they are parsed; good events are counted by ``apply_events`` and the stream position is
   recorded, all in ONE database transaction: each (tenant, event_id) enters ``seen_event``
   and the buckets together, or neither does. A batch is committed when it is full
   (``stream.batch_events``), when its first entries have waited ``stream.flush_ms``, or when the
   stream has nothing new;
3. only after the commit: each bad entry is acknowledged and dead-lettered in one atomic step (a
   Lua script: the dead letter is written only if that acknowledgement removed the entry from the
   pending list, so one bad entry gives one dead letter, whatever crashes and claims happen), the
   other entries are acknowledged (XACK), and the stream is trimmed exactly (MINID) below the
   oldest entry any group still has pending.

A crash anywhere leaves entries pending (never acknowledged before they were committed); whoever
reads them again (this consumer on restart, or another after ``stream.claim_idle_ms``) finds their
event ids in ``seen_event`` and counts nothing twice. Reads run in a thread, overlapping the
database writes of the previous batch.
"""

from __future__ import annotations

import gc
import hashlib
import os
import queue
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from billctl.core.events import MAX_FIELD, Event, EventError, parse_flat
from billctl.db.models import StreamOffset
from billctl.errors import ConfigError
from billctl.services.context import App
from billctl.services.usage import (
    TenantInfo,
    UsageReport,
    _check_alignment,
    _insert,
    apply_events,
    event_window,
    tenant_directory,
)
from billctl.stream.redis_stream import Entry, StreamClient


def stream_names(app: App) -> list[str]:
    name, shards = app.config.stream.name, app.config.stream.shards
    return [name] if shards == 0 else [f"{name}:{i}" for i in range(shards)]


def dead_letter_name(app: App) -> str:
    return app.config.stream.dead_letter or f"{app.config.stream.name}:dead"


def consumer_name(app: App) -> str:
    return app.config.stream.consumer or f"{socket.gethostname()}-{os.getpid()}"


def id_prefix(app: App, stream: str) -> str:
    """What a default event_id is made of: the entry id, qualified by the shard when sharded
    (two shards can hand out the same entry id for different events)."""
    return "" if app.config.stream.shards == 0 else f"{stream}/"


@dataclass
class AggregateReport(UsageReport):
    """A usage report plus what happened on the stream side."""

    batches: int = 0
    claimed: int = 0  # entries taken over from idle consumers (or from this consumer's earlier life)
    dead_lettered: int = 0  # bad entries dead-lettered by this run (one each, ever: see _after_commit)
    acked: int = 0
    trimmed: int = 0
    vanished: int = 0  # pending entries that no longer existed in the stream when claimed
    pending: int = 0  # dry run: entries delivered to the group but not acknowledged (not counted here)
    seconds: float = 0.0
    dead_reasons: Counter = field(default_factory=Counter)

    def merge(self, other: UsageReport) -> None:
        super().merge(other)
        if isinstance(other, AggregateReport):
            for name in ("batches", "claimed", "dead_lettered", "acked", "trimmed", "vanished", "pending"):
                setattr(self, name, getattr(self, name) + getattr(other, name))
            self.dead_reasons.update(other.dead_reasons)

    def as_dict(self) -> dict[str, object]:
        document = super().as_dict()
        document.update(
            batches=self.batches,
            claimed=self.claimed,
            dead_lettered=self.dead_lettered,
            dead_reasons=dict(self.dead_reasons.most_common()),
            acked=self.acked,
            trimmed=self.trimmed,
            vanished=self.vanished,
            pending=self.pending,
            seconds=round(self.seconds, 3),
            events_per_second=round(self.read / self.seconds) if self.seconds else None,
        )
        return document


@dataclass
class _Chunk:
    """One reply of XREADGROUP / XAUTOCLAIM, parsed by the reader thread (while the writer waits on
    the database) into compact rows; the raw entries are dropped, so memory per entry is small."""

    stream: str
    entries: list[Entry] | None
    claimed: bool = False
    vanished: int = 0
    ids: list[bytes] = field(default_factory=list)  # every entry id, for XACK
    rows: dict[int, tuple[int, int, str, int]] = field(default_factory=dict)  # dedupe key -> bucket row
    duplicates: int = 0  # repeated inside this chunk
    slow: list[Entry] = field(default_factory=list)  # entries for the general path (rare)
    parsed: bool = False


class Parser:
    """Stream entries to rows keyed by their dedupe key, as ``apply_events`` would build them.

    The fast path takes the common, well-formed entry that carries all five fields and a known
    tenant; everything else (defaults, bad values, unknown tenants) goes to ``slow`` and through
    ``parse_flat`` + ``apply_events``, so the rules and error texts stay in one place. The two
    paths give identical keys and rows (tested)."""

    def __init__(self, app: App, tenants: dict[str, TenantInfo]) -> None:
        self.prefixes = {s: id_prefix(app, s) for s in stream_names(app)}
        self.config = app.config
        self.bucket_seconds = app.config.usage.bucket_seconds
        self.set_tenants(tenants)
        self._endpoints: dict[bytes, str] = {}

    def set_tenants(self, tenants: dict[str, TenantInfo]) -> None:
        self.directory = {key.encode(): (info.id, info.person) for key, info in tenants.items()}

    def parse(self, chunk: _Chunk) -> None:
        window = event_window(self.config.usage)
        earliest, latest = window.earliest_ms, window.latest_ms
        bucket_ms = self.bucket_seconds * 1000
        directory, endpoints = self.directory, self._endpoints
        blake2b, from_bytes = hashlib.blake2b, int.from_bytes
        rows: dict[int, tuple[int, int, str, int]] = {}
        slow = chunk.slow
        duplicates = 0
        ids = chunk.ids
        for entry in chunk.entries or ():
            entry_id, flat = entry
            ids.append(entry_id)
            if len(flat) != 10:
                slow.append(entry)
                continue
            fields = {flat[0]: flat[1], flat[2]: flat[3], flat[4]: flat[5], flat[6]: flat[7], flat[8]: flat[9]}
            tenant = directory.get(fields.get(b"tenant_id"))  # type: ignore[arg-type]
            endpoint = fields.get(b"endpoint")
            ts = fields.get(b"ts")
            units = fields.get(b"units")
            event_id = fields.get(b"event_id")
            if (
                tenant is None
                or endpoint is None
                or ts is None
                or units is None
                or event_id is None
                or not ts.isdigit()
                or len(ts) > 16
                or not units.isdigit()
                or len(units) > 9
                or units[0] == 48  # a leading zero (or "0"): the general path decides
                or not 0 < len(event_id) <= MAX_FIELD
            ):
                slow.append(entry)
                continue
            ts_ms = int(ts)
            name = endpoints.get(endpoint)
            if name is None:
                if len(endpoint) > MAX_FIELD or not endpoint.isascii() or not endpoint:
                    slow.append(entry)
                    continue
                name = endpoints[endpoint] = endpoint.decode()
            if not earliest <= ts_ms <= latest:
                slow.append(entry)
                continue
            key = from_bytes(blake2b(event_id, digest_size=8, person=tenant[1]).digest(), "big", signed=True)
            if key in rows:
                duplicates += 1
                continue
            rows[key] = (tenant[0], ts_ms // bucket_ms * self.bucket_seconds, name, int(units))
        chunk.rows, chunk.duplicates, chunk.entries, chunk.parsed = rows, duplicates, None, True

    def parse_slow(self, chunk: _Chunk) -> tuple[list[tuple[tuple[str, bytes], Event]], list[tuple[str, str]]]:
        """The general path for the chunk's leftover entries: events, and (where, reason) for bad ones."""
        window = event_window(self.config.usage)
        prefix = self.prefixes.get(chunk.stream, "")
        events: list[tuple[tuple[str, bytes], Event]] = []
        dead: list[tuple[str, str]] = []
        for entry_id, flat in chunk.slow:
            try:
                events.append(
                    ((chunk.stream, entry_id), parse_flat(flat, entry_id, prefix, window))
                )
            except EventError as exc:
                dead.append((f"{chunk.stream}/{entry_id.decode()}", str(exc)))
        return events, dead


_IDLE = object()  # the reader found nothing new (drain: the stream is drained)
_DONE = object()  # the reader stopped


class _Reader(threading.Thread):
    """Reads chunks of entries ahead of the writer, into a bounded queue (memory depends on the
    batch size, not the stream length)."""

    def __init__(
        self,
        client: StreamClient,
        app: App,
        streams: list[str],
        consumer: str,
        follow: bool,
        stop: threading.Event,
        max_entries: int,
        parser: Parser,
        limit: int | None = None,
    ) -> None:
        super().__init__(name="billctl-stream-reader", daemon=True)
        self.client, self.streams, self.consumer, self.follow, self.stop = client, streams, consumer, follow, stop
        self.group = app.config.stream.group
        self.count = app.config.stream.read_count
        self.block_ms = app.config.stream.block_ms
        self.claim_idle_ms = app.config.stream.claim_idle_ms
        self.recovered = False  # this consumer's own pending entries (an earlier life) taken back yet?
        self.parser = parser
        # one batch read ahead while the writer commits the previous one
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, max_entries // self.count))
        self.left = limit  # --max-events: entries still to read (None: no limit)
        self.error: BaseException | None = None

    def _put(self, item: object) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and item is not _DONE:
                    return

    def _count(self) -> int:
        return self.count if self.left is None else max(1, min(self.count, self.left))

    def _took(self, n: int) -> None:
        if self.left is not None:
            self.left = max(0, self.left - n)

    def _claimed(self, stream: str, entries: list[Entry], vanished: list[bytes]) -> int:
        self._took(len(entries))
        if entries or vanished:
            chunk = _Chunk(stream, entries, claimed=True, vanished=len(vanished))
            self.parser.parse(chunk)
            self._put(chunk)
        return len(entries)

    def _recover_own(self, stream: str) -> int:
        """At start, nothing is in flight here yet: this consumer's own pending entries were left by
        an earlier process under the same name (``stream.consumer``) that died; take them back."""
        claimed = 0
        after: bytes | str = "0"
        while not self.stop.is_set() and self.left != 0:
            history = self.client.read_own_pending(stream, self.group, self.consumer, after, self._count())
            if not history:
                break
            after = history[-1][0]
            gone = [entry_id for entry_id, fields in history if fields is None]
            if gone:  # deleted from the stream while pending: nothing left to count
                self.client.ack(stream, self.group, gone)
            claimed += self._claimed(stream, [e for e in history if e[1] is not None], gone)
        return claimed

    def _claim_all(self) -> int:
        claimed = 0
        for stream in self.streams:
            if not self.recovered:
                claimed += self._recover_own(stream)
            start: bytes | str | None = "-"
            while start is not None and not self.stop.is_set() and self.left != 0:
                start, entries, vanished = self.client.claim_others(
                    stream, self.group, self.consumer, self.claim_idle_ms, start, self._count()
                )
                claimed += self._claimed(stream, entries, vanished)
        self.recovered = True
        return claimed

    def run(self) -> None:
        try:
            next_claim = 0.0
            while not self.stop.is_set():
                got = 0
                if time.monotonic() >= next_claim:
                    got += self._claim_all()
                    next_claim = time.monotonic() + max(self.claim_idle_ms / 2000, 0.05)
                for stream in self.streams:
                    if self.stop.is_set():
                        break
                    if self.left == 0:
                        return
                    block = max(1, self.block_ms // len(self.streams)) if self.follow else None
                    entries = self.client.read_new(stream, self.group, self.consumer, self._count(), block)
                    self._took(len(entries))
                    if entries:
                        got += len(entries)
                        chunk = _Chunk(stream, entries)
                        self.parser.parse(chunk)
                        self._put(chunk)
                if not got:
                    self._put(_IDLE)
                    if not self.follow:
                        return
        except BaseException as exc:  # handed to the writer, which raises it
            self.error = exc
        finally:
            self._put(_DONE)


def aggregate(
    app: App,
    *,
    follow: bool = False,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[AggregateReport], None] | None = None,
    max_events: int | None = None,
) -> AggregateReport:
    """Drain (default) or follow the configured stream(s). ``stop`` ends the run after the batch in
    flight (SIGTERM). ``max_events`` stops after about that many entries (tests, sampling)."""
    stop = stop or threading.Event()
    _load_tenants(app)  # the database first: a schema problem must not leave a group behind in Redis
    client = StreamClient(app.config.redis_url)
    client.ping()
    try:
        if dry_run:
            return _dry_run(app, client, progress, max_events)
        return _run(app, client, follow, stop, progress, max_events)
    finally:
        client.close()


def _run(
    app: App,
    client: StreamClient,
    follow: bool,
    stop: threading.Event,
    progress: Callable[[AggregateReport], None] | None,
    max_events: int | None,
) -> AggregateReport:
    streams = stream_names(app)
    group, consumer = app.config.stream.group, consumer_name(app)
    batch_events = app.config.stream.batch_events
    flush_after = check_claim_interval(app) / 1000
    for stream in streams:
        client.ensure_group(stream, group)
    report = AggregateReport()
    started = time.monotonic()
    writer = _Writer(app, client, report)
    reader_stop = threading.Event()
    reader = _Reader(
        client_for_thread(app), app, streams, consumer, follow, reader_stop, batch_events, writer.parser, max_events
    )
    thresholds = gc.get_threshold()
    gc.freeze()  # the long-lived objects so far are never garbage: keep the collector off them
    gc.set_threshold(200_000, 50, 50)  # batches allocate millions of short-lived objects (no cycles)
    reader.start()
    try:
        pending: list[_Chunk] = []
        size = 0
        first_at = 0.0  # when the batch's first chunk reached the writer
        reader_done = False
        while not reader_done:
            wait = max(0.0, first_at + flush_after - time.monotonic()) if pending else None
            try:
                item = reader.queue.get(timeout=wait)
            except queue.Empty:
                item = None  # the batch has waited stream.flush_ms: commit what there is
            if item is _DONE:
                reader_done = True
            elif item is not None and item is not _IDLE:
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                size += len(item.ids)
            limit_hit = max_events is not None and report.read + size >= max_events
            due = item is None or item is _IDLE or time.monotonic() - first_at >= flush_after
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


def check_claim_interval(app: App) -> int:
    """``stream.flush_ms``, once ``stream.claim_idle_ms`` is known to be comfortably above it: a batch
    stays uncommitted for about flush_ms plus its commit (and, under a backlog, the commit before
    it); entries must not look abandoned to other consumers meanwhile."""
    flush, claim = app.config.stream.flush_ms, app.config.stream.claim_idle_ms
    if claim < 10 * flush:
        raise ConfigError(
            f"stream.claim_idle_ms = {claim} is too short for stream.flush_ms = {flush}: other "
            "consumers would claim entries that are still in flight",
            hint=f"set stream.claim_idle_ms to at least {10 * flush} (10 x stream.flush_ms), or lower stream.flush_ms",
        )
    return flush


def client_for_thread(app: App) -> StreamClient:
    """The reader thread's own connection (a blocking XREADGROUP must not hold the writer's)."""
    return StreamClient(app.config.redis_url)


class _Writer:
    """Commits batches: aggregates + stream position in one transaction, then dead letters, XACK, trim."""

    def __init__(self, app: App, client: StreamClient, report: AggregateReport) -> None:
        self.app, self.client, self.report = app, client, report
        self.group = app.config.stream.group
        self.dead_letter = dead_letter_name(app)
        self.retention = app.config.stream.retention_seconds
        self.tenants = _load_tenants(app)
        self.parser = Parser(app, self.tenants)

    def write(self, chunks: list[_Chunk]) -> None:
        with self.app.engine.begin() as conn:
            report, self.tenants = count_chunks(conn, chunks, self.tenants, self.app, self.parser)
            record_offsets(conn, chunks, self.group)
        self._after_commit(chunks, report)
        self.report.merge(report)

    def _after_commit(self, chunks: list[_Chunk], report: AggregateReport) -> None:
        dead = self._dead_letter(chunks, report) if report.rejected else set()
        streams: dict[str, list[bytes]] = {}
        for chunk in chunks:
            ids = [i for i in chunk.ids if (chunk.stream, i) not in dead] if dead else chunk.ids
            streams.setdefault(chunk.stream, []).extend(ids)
            if chunk.claimed:
                report.claimed += len(chunk.ids)
            report.vanished += chunk.vanished
        for stream, ids in streams.items():
            report.acked += self.client.ack(stream, self.group, ids)
            report.trimmed += self.client.trim_committed(stream, self.retention)[1]
        report.batches += 1

    def _dead_letter(self, chunks: list[_Chunk], report: AggregateReport) -> set[tuple[str, bytes]]:
        """Acknowledge and dead-letter the batch's bad entries, each at most once ever (the Lua
        script in the stream adapter). One that was already acknowledged (dead-lettered by a run
        that crashed before acknowledging the rest of its batch, or by another consumer that held
        it too) is not written again and counts as a duplicate, not as a dead letter, so the
        report counts each bad entry once. Returns the (stream, entry id) pairs handled here."""
        raw = {f"{c.stream}/{entry_id.decode()}": fields for c in chunks for entry_id, fields in c.slow}
        by_stream: dict[str, list[tuple[str, str, bytes, dict[bytes, bytes]]]] = defaultdict(list)
        for where, reason in report.rejected:
            stream, entry_id = where.rsplit("/", 1)
            fields = raw[where]
            letter = {
                **dict(zip(fields[::2], fields[1::2], strict=False)),
                b"_source": stream.encode(),
                b"_id": entry_id.encode(),
                b"_reason": reason.encode(),
            }
            by_stream[stream].append((where, reason, entry_id.encode(), letter))
        handled: set[tuple[str, bytes]] = set()
        written: list[tuple[str, str]] = []
        for stream, items in by_stream.items():
            added = self.client.dead_letter(stream, self.group, self.dead_letter, [(i[2], i[3]) for i in items])
            for (where, reason, entry_id, _), new in zip(items, added, strict=True):
                handled.add((stream, entry_id))
                if new:
                    written.append((where, reason))
                else:
                    report.duplicates += 1
        report.rejected = written
        report.dead_lettered += len(written)
        report.acked += len(written)  # the script acknowledged them
        report.dead_reasons = Counter(_reason_kind(reason) for _, reason in written)
        return handled


def count_chunks(
    conn: sa.Connection, chunks: list[_Chunk], tenants: dict[str, TenantInfo], app: App, parser: Parser
) -> tuple[AggregateReport, dict[str, TenantInfo]]:
    """Count a batch of parsed chunks within the caller's transaction (the real run and the dry run
    share this). Returns the report (``rejected`` = dead letters, as (stream/entry-id, reason)) and
    the tenant directory, reloaded when the batch names a tenant created since it was loaded."""
    fresh: dict[int, tuple[int, int, str, int]] = {}
    fast = duplicates = 0
    events: list[tuple[tuple[str, bytes], Event]] = []
    dead: list[tuple[str, str]] = []
    for chunk in chunks:
        if not chunk.parsed:
            parser.parse(chunk)
        repeated = fresh.keys() & chunk.rows.keys()  # the same event in two chunks of the batch
        for key in repeated:
            del chunk.rows[key]
        duplicates += chunk.duplicates + len(repeated)
        fast += len(chunk.rows) + chunk.duplicates + len(repeated)
        fresh.update(chunk.rows)
        if chunk.slow:
            slow_events, slow_dead = parser.parse_slow(chunk)
            events.extend(slow_events)
            dead.extend(slow_dead)
    if any(event.tenant not in tenants for _, event in events):
        tenants = _load_tenants(app)  # a tenant created since the run started
        parser.set_tenants(tenants)
    counted = apply_events(conn, events, tenants, app.config.usage.bucket_seconds, fresh=fresh)
    report = AggregateReport()
    report.merge(counted)
    report.read += fast + len(dead)
    report.duplicates += duplicates
    # unknown tenants are dead letters too (invariant 2)
    report.rejected = dead + [(f"{stream}/{entry_id.decode()}", why) for (stream, entry_id), why in counted.rejected]
    for _, reason in report.rejected:
        report.dead_reasons[_reason_kind(reason)] += 1
    return report, tenants


def _load_tenants(app: App) -> dict[str, TenantInfo]:
    with app.engine.connect() as conn:
        tenants = tenant_directory(conn)
    _check_alignment(tenants, app.config.usage.bucket_seconds)
    return tenants


def record_offsets(conn: sa.Connection, chunks: list[_Chunk], group: str) -> None:
    """Newest committed entry per stream, in the aggregates' transaction (for `usage lag`, audits)."""
    newest: dict[str, tuple[int, int, str]] = {}
    counts: Counter = Counter()
    for chunk in chunks:
        if not chunk.ids:
            continue
        text = chunk.ids[-1].decode()  # a reply's entries are in id order: the last is the newest
        ms, seq = text.split("-")
        key = (int(ms), int(seq), text)
        if chunk.stream not in newest or key > newest[chunk.stream]:
            newest[chunk.stream] = key
        counts[chunk.stream] += len(chunk.ids)
    if not newest:
        return
    table = StreamOffset.__table__
    for stream, (_, _, last_id) in newest.items():
        statement = _insert(conn, table).values(
            stream=stream, group=group, last_id=last_id, events=counts[stream], updated_at=sa.func.now()
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.stream, table.c.group],
            set_={
                # claimed entries can be older than the newest committed: keep the maximum
                "last_id": sa.case(
                    (_id_greater(statement.excluded.last_id, table.c.last_id), statement.excluded.last_id),
                    else_=table.c.last_id,
                ),
                "events": table.c.events + statement.excluded.events,
                "updated_at": statement.excluded.updated_at,
            },
        )
        conn.execute(statement)


def _id_greater(a, b):  # type: ignore[no-untyped-def]
    """SQL: stream id a > b, comparing "ms-seq" numerically (ids are at most 20+1+20 characters)."""

    def key(col):  # type: ignore[no-untyped-def]
        return sa.func.substr(sa.literal("00000000000000000000") + col, sa.func.length(col) + 1, 20)

    return key(a) > key(b)


_KINDS = (
    ("unknown tenant", "unknown tenant"),
    ("tenant_id is missing", "missing tenant_id"),
    ("units", "bad units"),
    ("in the future", "future ts"),
    ("longer than", "oversized field"),
    ("ts", "bad ts"),
)


def _reason_kind(reason: str) -> str:
    """A short category for the summary (the full reason stays on the dead letter)."""
    return next((label for needle, label in _KINDS if needle in reason), "other")


def _dry_run(
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
    tenants = _load_tenants(app)
    parser = Parser(app, tenants)
    with app.engine.connect() as conn:
        transaction = conn.begin()
        try:
            for stream in stream_names(app):
                info = client.group(stream, group)
                after = info.last_delivered if info else "0-0"
                report.pending += info.pending if info else 0
                while max_events is None or report.read < max_events:
                    entries = client.range_after(stream, after, min(app.config.stream.batch_events, 10_000))
                    if not entries:
                        break
                    after = entries[-1][0].decode()
                    counted, tenants = count_chunks(conn, [_Chunk(stream, entries)], tenants, app, parser)
                    counted.dead_lettered = len(counted.rejected)
                    counted.batches = 1
                    report.merge(counted)
                    report.seconds = time.monotonic() - started
                    if progress:
                        progress(report)
        finally:
            transaction.rollback()  # invariant 6: the same path as the real run, nothing kept
    report.seconds = time.monotonic() - started
    return report
