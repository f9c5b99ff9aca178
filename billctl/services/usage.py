"""Usage in: events -> usage buckets, each (tenant, event_id) counted once.

``apply_events`` does its work inside the caller's transaction, so a stream reader can commit
its stream position in the same transaction as the aggregates (DESIGN.md invariant 1).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billctl.config import UsageSettings
from billctl.core import periods
from billctl.core.bounds import quote
from billctl.core.events import Event, EventError, Window, parse_event
from billctl.db.models import Invoice, LateUsage, SeenEvent, Tenant, UsageBucket
from billctl.errors import BadInput
from billctl.services.context import App

BATCH = 5_000


@dataclass
class TenantInfo:
    id: int
    timezone: str

    @property
    def person(self) -> bytes:
        """The BLAKE2b personalisation that puts the tenant into an event id's dedupe hash."""
        return self.id.to_bytes(8, "big")


def event_key(tenant_id: int, event_id: str) -> int:
    """The dedupe key of (tenant, event_id) stored in seen_event: a signed 64-bit BLAKE2b."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=tenant_id.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class UsageReport:
    read: int = 0
    counted: int = 0
    units: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    late: Counter = field(default_factory=Counter)  # "tenant period" -> events counted for a finalized period
    not_billable: int = 0  # gateway log lines whose status does not bill (skipped, not an error)
    rejected_unlisted: int = 0  # rejections beyond KEEP_REJECTED: counted, not kept (a file of bad lines)

    KEEP_REJECTED = 10_000

    def reject(self, where: str, why: str) -> None:
        if len(self.rejected) < self.KEEP_REJECTED:
            self.rejected.append((where, why))
        else:
            self.rejected_unlisted += 1

    @property
    def rejected_count(self) -> int:
        return len(self.rejected) + self.rejected_unlisted

    def merge(self, other: UsageReport) -> None:
        self.read += other.read
        self.not_billable += other.not_billable
        self.counted += other.counted
        self.units += other.units
        self.duplicates += other.duplicates
        for where, why in other.rejected:
            self.reject(where, why)
        self.rejected_unlisted += other.rejected_unlisted
        self.late.update(other.late)

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "counted": self.counted,
            "units": self.units,
            "duplicates": self.duplicates,
            "not_billable": self.not_billable,
            "rejected": self.rejected_count,
            "rejections": [{"where": w, "reason": r} for w, r in self.rejected[:1000]],
            "late": [
                {"tenant": k.split(" ")[0], "period": k.split(" ")[1], "events": n}
                for k, n in sorted(self.late.items())
            ],
        }


def tenant_directory(conn: Connection) -> dict[str, TenantInfo]:
    rows = conn.execute(sa.select(Tenant.key, Tenant.id, Tenant.timezone))
    return {key: TenantInfo(tid, tz) for key, tid, tz in rows}


def _insert(conn: Connection, table: sa.Table):  # type: ignore[no-untyped-def]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def apply_events(
    conn: Connection,
    events: Iterable[tuple[object, Event]],
    tenants: dict[str, TenantInfo],
    bucket_seconds: int,
    fresh: dict[int, tuple[int, int, str, int]] | None = None,
) -> UsageReport:
    """Count new events into buckets within the caller's transaction.

    ``events`` are (where, event) pairs; ``where`` names the source for the report (line 12,
    stream entry id). Unknown tenants are rejected; repeated (tenant, event_id) are duplicates,
    whether repeated inside this batch or already counted by an earlier one. ``fresh`` holds rows
    the stream reader already prepared (dedupe key -> (tenant id, bucket start, endpoint, units));
    they are counted with the events.
    """
    report = UsageReport()
    fresh = {} if fresh is None else fresh  # dedupe key -> (tenant id, bucket, endpoint, units)
    blake2b = hashlib.blake2b
    from_bytes = int.from_bytes
    read = 0
    for where, event in events:
        read += 1
        info = tenants.get(event.tenant)
        if info is None:
            # every one is kept (not ``reject``): the stream reader dead-letters each of these
            report.rejected.append((where, f"unknown tenant {quote(event.tenant)}"))  # type: ignore[arg-type]
            continue
        key = from_bytes(
            blake2b(event.event_id.encode(), digest_size=8, person=info.person).digest(), "big", signed=True
        )
        if key in fresh:
            report.duplicates += 1
            continue
        fresh[key] = (info.id, event.ts_ms // 1000 // bucket_seconds * bucket_seconds, event.endpoint, event.units)
    report.read = read
    if not fresh:
        return report
    now = int(time.time())
    if conn.dialect.name == "postgresql":
        per_bucket = _count_new_pg(conn, fresh, now)
    else:
        per_bucket = _count_new_generic(conn, fresh, now)
    for units, count in per_bucket.values():
        report.counted += count
        report.units += units
    report.duplicates += len(fresh) - report.counted
    tz_of = {info.id: info.timezone for info in tenants.values()}
    _note_late(conn, per_bucket, tz_of, {info.id: key for key, info in tenants.items()}, report)
    return report


_PG_TEMP = {
    "event": "CREATE TEMP TABLE IF NOT EXISTS billctl_tmp_event (id_hash bigint, tenant_id int, bucket_start bigint, "
    "endpoint text, units bigint) ON COMMIT DELETE ROWS",
}

# One statement, all in the server: record the ids (the first writer of an id wins; rows in key
# order so concurrent aggregators lock in the same order and cannot deadlock), count only the
# events whose id was new into their buckets, and return the new units per (tenant, bucket).
_PG_COUNT_NEW = """
WITH new AS (
    INSERT INTO seen_event (id_hash, seen_at)
    SELECT id_hash, %(now)s FROM billctl_tmp_event ORDER BY id_hash
    ON CONFLICT DO NOTHING
    RETURNING id_hash
), counted AS (
    SELECT e.tenant_id, e.bucket_start, e.endpoint, SUM(e.units) AS units, COUNT(*) AS events
    FROM billctl_tmp_event e JOIN new ON new.id_hash = e.id_hash
    GROUP BY e.tenant_id, e.bucket_start, e.endpoint
), upserted AS (
    INSERT INTO usage_bucket (tenant_id, bucket_start, endpoint, units, events)
    SELECT tenant_id, bucket_start, endpoint, units, events FROM counted
    ORDER BY tenant_id, bucket_start, endpoint
    ON CONFLICT (tenant_id, bucket_start, endpoint) DO UPDATE
    SET units = usage_bucket.units + excluded.units, events = usage_bucket.events + excluded.events
)
SELECT tenant_id, bucket_start, SUM(units), SUM(events) FROM counted GROUP BY tenant_id, bucket_start
"""


def _pg_copy(conn: Connection, table: str, columns: str, types: list[str], rows: Iterable[tuple]) -> None:
    conn.exec_driver_sql(_PG_TEMP[table.removeprefix("billctl_tmp_")])
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


def _count_new_pg(
    conn: Connection, fresh: dict[int, tuple[int, int, str, int]], now: int
) -> dict[tuple[int, int], list[int]]:
    """PostgreSQL: binary COPY of the batch into a temp table, then ``_PG_COUNT_NEW``."""
    # Sorts and hashes of a 100k batch stay in memory; no JIT: the temp table has no statistics, the
    # planner's estimate is huge, and compiling the plan cost ~0.4 s a batch for nothing.
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql("SET LOCAL jit = off")
    _pg_copy(
        conn,
        "billctl_tmp_event",
        "id_hash, tenant_id, bucket_start, endpoint, units",
        ["int8", "int4", "int8", "text", "int8"],
        ((h, *rest) for h, rest in fresh.items()),
    )
    rows = conn.exec_driver_sql(_PG_COUNT_NEW, {"now": now})
    return {(t, b): [int(u), int(n)] for t, b, u, n in rows}


def _count_new_generic(
    conn: Connection, fresh: dict[int, tuple[int, int, str, int]], now: int
) -> dict[tuple[int, int], list[int]]:
    """SQLite (one writer at a time): insert the ids, keep the new ones, upsert their buckets."""
    seen = SeenEvent.__table__
    statement = _insert(conn, seen).on_conflict_do_nothing().returning(seen.c.id_hash)
    new_keys = conn.execute(statement, [{"id_hash": h, "seen_at": now} for h in sorted(fresh)])
    buckets: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    per_bucket: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for (digest,) in new_keys:
        tid, bucket, endpoint, units = fresh[digest]
        for acc in (buckets[(tid, bucket, endpoint)], per_bucket[(tid, bucket)]):
            acc[0] += units
            acc[1] += 1
    upsert_buckets(conn, buckets)
    return per_bucket


def upsert_buckets(conn: Connection, buckets: dict[tuple[int, int, str], list[int]]) -> None:
    if not buckets:
        return
    table = UsageBucket.__table__
    statement = _insert(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.bucket_start, table.c.endpoint],
        set_={"units": table.c.units + statement.excluded.units, "events": table.c.events + statement.excluded.events},
    )
    conn.execute(
        statement,
        [
            {"tenant_id": t, "bucket_start": b, "endpoint": e, "units": u, "events": n}
            for (t, b, e), (u, n) in sorted(buckets.items())
        ],
    )


def lock_tenants(conn: Connection, tenant_ids: Iterable[int], *, exclusive: bool = False) -> None:
    """Serialise ingest against finalize per tenant (no late event can slip between them).

    Ingest takes shared locks (aggregators do not block each other); finalize takes an
    exclusive one. SQLite has one writer at a time: a no-op write takes its write lock."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return
    table = Tenant.__table__
    if conn.dialect.name == "postgresql":
        query = sa.select(table.c.id).where(table.c.id.in_(ids)).order_by(table.c.id)
        conn.execute(query.with_for_update(read=not exclusive))
    else:
        conn.execute(sa.update(table).where(table.c.id == ids[0]).values(id=table.c.id))


def _note_late(
    conn: Connection,
    buckets: dict[tuple[int, int], list[int]],
    tz_of: dict[int, str],
    key_of: dict[int, str],
    report: UsageReport,
) -> None:
    """Find events that landed in a period with a live (finalized) invoice: report them and mark
    the (tenant, period) so the tenant's next invoice bills the difference."""
    per_period: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for (tid, start), (units, count) in buckets.items():
        acc = per_period[(tid, _period_key(start, tz_of[tid]))]
        acc[0] += units
        acc[1] += count
    lock_tenants(conn, (tid for tid, _ in per_period))
    finalized = set(
        conn.execute(
            sa.select(Invoice.tenant_id, Invoice.period).where(
                Invoice.tenant_id.in_({tid for tid, _ in per_period}),
                Invoice.status != "void",
                Invoice.period.in_({p for _, p in per_period}),
            )
        ).all()
    )
    late_rows = []
    for (tid, period), (units, count) in per_period.items():
        if (tid, period) in finalized:
            report.late[f"{key_of[tid]} {period}"] += count
            late_rows.append(
                {"tenant_id": tid, "period": period, "events": count, "units": units, "last_seen": datetime.now(UTC)}
            )
    if late_rows:
        table = LateUsage.__table__
        statement = _insert(conn, table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.period],
            set_={
                "events": table.c.events + statement.excluded.events,
                "units": table.c.units + statement.excluded.units,
                "last_seen": statement.excluded.last_seen,
            },
        )
        conn.execute(statement, late_rows)


@functools.lru_cache(maxsize=65536)
def _period_key(bucket: int, tz: str) -> str:
    return str(periods.period_of(_utc(bucket), tz))


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def event_window(usage: UsageSettings, now_ms: int | None = None) -> Window:
    """The timestamps events may carry now (usage.max_past_days .. usage.max_future_seconds)."""
    return Window(
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        max_past_days=usage.max_past_days,
        max_future_seconds=usage.max_future_seconds,
    )


MAX_LINE_BYTES = 64 * 1024  # an event is a few hundred bytes; an Envoy access-log line a few KB


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | EventError]]:
    """(line number, bytes) for each line, read as bytes so that one bad line (another encoding, a
    stray binary) is that line's problem only; a line longer than MAX_LINE_BYTES is skipped
    without holding it in memory."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            size = len(line)
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
                size += len(line)
            yield number, EventError(f"line is {size:,} bytes long; the limit is {MAX_LINE_BYTES:,}")
            continue
        yield number, line


def _json_objects(stream: IO[bytes], source: str) -> Iterator[tuple[str, str, dict | EventError]]:
    """(where, line text, object) for each non-empty line; an EventError for a line that is not
    UTF-8 or not a JSON object."""
    for number, line in _lines(stream):
        where = f"{source}:{number}"
        if isinstance(line, EventError):
            yield where, "", line
            continue
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            yield where, "", EventError(f"not UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1}")
            continue
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield where, text, EventError(f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting 100,000 deep
            yield where, text, EventError(f"not valid JSON ({str(exc)[:80]})")
            continue
        yield where, text, data if isinstance(data, dict) else EventError("not a JSON object")


def parse_ndjson(stream: IO[bytes], source: str, window: Window) -> Iterator[tuple[str, Event | EventError]]:
    """Events from newline-delimited JSON. A line without event_id gets a stable one derived from
    its content and its occurrence in the file, so re-importing the same file counts nothing twice."""
    occurrences: Counter = Counter()
    for where, _text, data in _json_objects(stream, source):
        if isinstance(data, EventError):
            yield where, data
            continue
        unknown = set(data) - {"tenant_id", "endpoint", "ts", "units", "event_id"}
        if unknown:
            yield (
                where,
                EventError(
                    f"unknown field(s) {', '.join(sorted(unknown))}; the fields are "
                    "tenant_id, endpoint, ts, units, event_id"
                ),
            )
            continue
        default_id = None
        if data.get("event_id") is None:
            digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]
            occurrences[digest] += 1
            default_id = f"sha:{digest}:{occurrences[digest]}"
        try:
            yield where, parse_event(data, default_event_id=default_id, window=window)
        except EventError as exc:
            yield where, exc


def status_matcher(spec: str) -> Callable[[int], bool]:
    """'200-299,429' -> a predicate on status codes (the spec was validated with the settings)."""
    ranges = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        ranges.append((int(low), int(high or low)))
    return lambda code: any(low <= code <= high for low, high in ranges)


_MISSING = (None, "", "-")


def parse_envoy(
    stream: IO[bytes], source: str, tenant_field: str, billable: Callable[[int], bool], window: Window
) -> Iterator[tuple[str, Event | EventError | None]]:
    """Events from Envoy/Istio JSON access logs: one request per line with ``start_time``,
    ``path``, ``response_code``, ``request_id`` and the tenant in ``tenant_field`` (a logged request
    header). ``None`` for a request whose status does not bill. The event id is the request id
    (x-request-id), so the same request logged twice counts once; without one, the line's content."""
    occurrences: Counter = Counter()
    for where, text, data in _json_objects(stream, source):
        if isinstance(data, EventError):
            yield where, data
            continue
        status = data.get("response_code")
        if isinstance(status, bool) or not isinstance(status, int | str) or not str(status).strip().isdigit():
            yield where, EventError(f"response_code {quote(status, 40)} is not a status code")
            continue
        code = int(str(status)[:6])
        if not billable(code):
            yield where, None
            continue
        tenant = data.get(tenant_field)
        if tenant in _MISSING:
            yield where, EventError(f"{tenant_field} is missing (the tenant header field, gateway.tenant_field)")
            continue
        path = data.get("path")
        endpoint = path.split("?", 1)[0] if isinstance(path, str) and path not in _MISSING else "*"
        event_id = data.get("request_id")
        if event_id in _MISSING or not isinstance(event_id, str | int) or isinstance(event_id, bool):
            digest = hashlib.sha256(text.encode()).hexdigest()[:32]
            occurrences[digest] += 1
            event_id = f"sha:{digest}:{occurrences[digest]}"
        fields = {"tenant_id": tenant, "endpoint": endpoint, "ts": data.get("start_time"), "event_id": event_id}
        try:
            yield where, parse_event(fields, window=window)
        except EventError as exc:
            yield where, EventError(str(exc).replace("ts ", "start_time ", 1) if str(exc).startswith("ts") else exc)


def _detect_format(handle: IO[bytes]) -> str:
    """'envoy' when the first line looks like an access log (start_time + response_code), else
    'events'. Only peeks: the handle is left where it was."""
    first = handle.peek(MAX_LINE_BYTES).split(b"\n", 1)[0]  # type: ignore[attr-defined]
    try:
        data = json.loads(first)
    except (ValueError, RecursionError):
        return "events"
    return "envoy" if isinstance(data, dict) and "start_time" in data and "response_code" in data else "events"


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
    handle = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw  # type: ignore[arg-type]
    report = UsageReport()
    window = event_window(app.config.usage)
    with handle:
        with app.engine.connect() as conn:
            tenants = tenant_directory(conn)
        _check_alignment(tenants, bucket_seconds)
        batch: list[tuple[str, Event]] = []
        source = "-" if path == "-" else path
        if fmt == "auto":
            fmt = _detect_format(handle)
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


def _check_alignment(tenants: dict[str, TenantInfo], bucket_seconds: int) -> None:
    for tz in {info.timezone for info in tenants.values()}:
        try:
            periods.check_bucket_alignment(bucket_seconds, tz)
        except periods.PeriodError as exc:
            from billctl.errors import ConfigError

            raise ConfigError(
                f"usage.bucket_seconds = {bucket_seconds}: {exc}", hint="choose a smaller bucket size"
            ) from None


def _apply_batch(
    app: App, batch: list[tuple[str, Event]], tenants: dict[str, TenantInfo], bucket_seconds: int, dry_run: bool
) -> UsageReport:
    conn = app.engine.connect()
    transaction = conn.begin()
    try:
        report = apply_events(conn, batch, tenants, bucket_seconds)
        if dry_run:
            transaction.rollback()  # same code path as the real run; nothing is kept
        else:
            transaction.commit()
        return report
    except BaseException:
        transaction.rollback()
        raise
    finally:
        conn.close()


def usage_totals(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """Units per endpoint for one tenant in [start, end)."""
    rows = conn.execute(
        sa.select(UsageBucket.endpoint, sa.func.sum(UsageBucket.units))
        .where(
            UsageBucket.tenant_id == tenant_id,
            UsageBucket.bucket_start >= int(start.timestamp()),
            UsageBucket.bucket_start < int(end.timestamp()),
        )
        .group_by(UsageBucket.endpoint)
    )
    return {endpoint: int(units) for endpoint, units in rows}
