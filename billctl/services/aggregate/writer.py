"""The writer: one batch = aggregates + stream position in ONE transaction; only after its commit,
dead letters, XACK and trim (DESIGN.md invariant 1)."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from billctl.core.events import Event
from billctl.db.models import StreamOffset
from billctl.db.repositories.tenants import tenant_directory
from billctl.db.repositories.usage import dialect_insert
from billctl.db.tables import table_of
from billctl.services.aggregate.dead_letters import dead_letter_batch
from billctl.services.aggregate.names import dead_letter_name
from billctl.services.aggregate.parser import Chunk, Parser
from billctl.services.aggregate.report import AggregateReport, reason_kind
from billctl.services.context import App
from billctl.services.usage import TenantInfo, apply_events, check_alignment
from billctl.stream.redis_stream import StreamClient


class Writer:
    """Commits batches: aggregates + stream position in one transaction, then dead letters, XACK, trim."""

    def __init__(self, app: App, client: StreamClient, report: AggregateReport) -> None:
        self.app, self.client, self.report = app, client, report
        self.group = app.config.stream.group
        self.dead_letter = dead_letter_name(app)
        self.retention = app.config.stream.retention_seconds
        self.tenants = load_tenants(app)
        self.parser = Parser(app, self.tenants)

    def write(self, chunks: list[Chunk]) -> None:
        # ONE transaction: the aggregates, the seen event ids and the stream position commit together
        with self.app.uow() as uow:
            conn = uow.connection
            report, self.tenants = count_chunks(conn, chunks, self.tenants, self.app, self.parser)
            record_offsets(conn, chunks, self.group)
        self._after_commit(chunks, report)  # only now: dead letters, XACK, trim
        self.report.merge(report)

    def _after_commit(self, chunks: list[Chunk], report: AggregateReport) -> None:
        dead = (
            dead_letter_batch(self.client, self.group, self.dead_letter, chunks, report) if report.rejected else set()
        )
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


def count_chunks(
    conn: sa.Connection, chunks: list[Chunk], tenants: dict[str, TenantInfo], app: App, parser: Parser
) -> tuple[AggregateReport, dict[str, TenantInfo]]:
    """Count a batch of parsed chunks within the caller's transaction (the real run and the dry run
    share this). Returns the report (``rejected`` = dead letters, as (stream/entry-id, reason)) and
    the tenant directory, reloaded when the batch names a tenant created since it was loaded."""
    fresh: dict[int, tuple[int, int, str, int]] = {}
    fast = duplicates = 0
    events: list[tuple[str, Event]] = []
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
        tenants = load_tenants(app)  # a tenant created since the run started
        parser.set_tenants(tenants)
    counted = apply_events(conn, events, tenants, app.config.usage.bucket_seconds, fresh=fresh)
    report = AggregateReport()
    report.merge(counted)
    report.read += fast + len(dead)
    report.duplicates += duplicates
    # unknown tenants are dead letters too (invariant 2)
    report.rejected = dead + counted.rejected
    for _, reason in report.rejected:
        report.dead_reasons[reason_kind(reason)] += 1
    return report, tenants


def load_tenants(app: App) -> dict[str, TenantInfo]:
    with app.uow(readonly=True) as uow:
        tenants = tenant_directory(uow.connection)
    check_alignment(tenants, app.config.usage.bucket_seconds)
    return tenants


def record_offsets(conn: sa.Connection, chunks: list[Chunk], group: str) -> None:
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
    table = table_of(StreamOffset)
    for stream, (_, _, last_id) in newest.items():
        statement = dialect_insert(conn, table).values(
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


def _id_greater(a: sa.ColumnElement[str], b: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """SQL: stream id a > b, comparing "ms-seq" numerically (ids are at most 20+1+20 characters)."""

    def key(col: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        return sa.func.substr(sa.literal("00000000000000000000") + col, sa.func.length(col) + 1, 20)

    return key(a) > key(b)
