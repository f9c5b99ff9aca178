"""Looking at usage: one tenant's period (per endpoint, per day), the top tenants, the stream backlog,
dead letters, and pruning the dedupe window. Read-only except ``replay_dead_letters`` and ``prune``."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import pendulum
import sqlalchemy as sa

from billctl.core.bounds import quote
from billctl.core.events import EventError, parse_flat
from billctl.core.periods import Period
from billctl.db.models import SeenEvent
from billctl.db.repositories import tenants as tenants_repo
from billctl.db.repositories import usage as usage_repo
from billctl.db.repositories.tenants import tenant_directory
from billctl.db.tables import table_of
from billctl.services.aggregate import dead_letter_name, id_prefix, stream_names
from billctl.services.context import App
from billctl.services.tenants import get_tenant
from billctl.services.usage import event_window
from billctl.stream.redis_stream import StreamClient, id_ms


@dataclass
class TenantUsage:
    tenant: str
    period: str
    timezone: str
    endpoints: list[tuple[str, int, int]]  # (endpoint, events, units), most units first
    days: list[tuple[str, int]]  # (YYYY-MM-DD local, units) for every day of the period

    @property
    def units(self) -> int:
        return sum(units for _, _, units in self.endpoints)

    @property
    def events(self) -> int:
        return sum(events for _, events, _ in self.endpoints)


def tenant_usage(app: App, tenant_key: str, period: Period) -> TenantUsage:
    with app.uow(readonly=True) as uow:
        tenant = get_tenant(uow.session, tenant_key)
        assert tenant.id is not None  # a stored tenant
        key, zone = tenant.key, tenant.timezone
        start, end = period.bounds(zone)
        endpoints = usage_repo.endpoint_totals(uow.connection, tenant.id, start, end)
        per_bucket = usage_repo.bucket_totals(uow.connection, tenant.id, start, end)
    tz = pendulum.timezone(zone)
    days: dict[str, int] = {}
    day = pendulum.instance(start).in_timezone(tz)
    while day < end:
        days[day.format("YYYY-MM-DD")] = 0
        day = day.add(days=1)
    for bucket, units in per_bucket:
        day_key = pendulum.from_timestamp(bucket, tz=tz).format("YYYY-MM-DD")
        days[day_key] = days.get(day_key, 0) + units
    rows = sorted(endpoints, key=lambda r: (-r[2], r[0]))
    return TenantUsage(key, str(period), zone, rows, list(days.items()))


def top_tenants(app: App, period: Period, limit: int = 10) -> list[tuple[str, str, int, int]]:
    """(tenant, name, events, units) with the most units in the period (each in its own time zone)."""
    totals: list[tuple[str, str, int, int]] = []
    with app.uow(readonly=True) as uow:
        for tz in tenants_repo.time_zones(uow.connection):
            start, end = period.bounds(tz)
            totals.extend(usage_repo.tenant_totals(uow.connection, tz, start, end))
    totals.sort(key=lambda r: (-r[3], r[0]))
    return totals[:limit]


# -- the stream backlog ---------------------------------------------------------------------------
@dataclass
class StreamLag:
    stream: str
    length: int
    groups: list[dict[str, object]] = field(default_factory=list)


def stream_lag(app: App) -> list[StreamLag]:
    client = StreamClient(app.config.redis_url)
    client.ping()
    now_ms = int(time.time() * 1000)
    try:
        result = []
        for stream in [*stream_names(app), dead_letter_name(app)]:
            lag = StreamLag(stream, client.length(stream))
            for info in client.groups(stream):
                lag.groups.append(
                    {
                        "group": info.group,
                        "consumers": info.consumers,
                        "lag": info.lag,
                        "pending": info.pending,
                        "oldest_pending_age_s": (now_ms - info.oldest_pending_ms) // 1000
                        if info.oldest_pending_ms is not None
                        else None,
                        "last_delivered": info.last_delivered,
                    }
                )
            result.append(lag)
        return result
    finally:
        client.close()


# -- dead letters ---------------------------------------------------------------------------------
@dataclass
class DeadLetter:
    id: str  # id in the dead-letter stream
    source: str  # stream it came from
    source_id: str  # its entry id there
    reason: str
    fields: dict[str, str]
    problem: str | None = None  # replay: why it would fail again now (None: would be counted)


def _decode(fields: list[bytes]) -> dict[str, str]:
    return {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in zip(fields[::2], fields[1::2], strict=False)
    }


def list_dead_letters(app: App, limit: int = 100, check: bool = False) -> tuple[int, list[DeadLetter]]:
    """(total in the dead-letter stream, the oldest ``limit`` entries). With ``check``, each says
    whether it would be counted if replayed now (e.g. its tenant has been created since)."""
    client = StreamClient(app.config.redis_url)
    client.ping()
    try:
        name = dead_letter_name(app)
        total = client.length(name)
        entries = client.range_after(name, "0-0", limit)
        letters = []
        for entry_id, raw in entries:
            fields = _decode(raw)
            letters.append(
                DeadLetter(
                    id=entry_id.decode(),
                    source=fields.pop("_source", ""),
                    source_id=fields.pop("_id", ""),
                    reason=fields.pop("_reason", ""),
                    fields=fields,
                )
            )
        if check and letters:
            with app.uow(readonly=True) as uow:
                tenants = tenant_directory(uow.connection)
            window = event_window(app.config.usage)
            for letter in letters:
                flat = [x.encode() for kv in letter.fields.items() for x in kv]
                try:
                    event = parse_flat(flat, letter.source_id.encode(), id_prefix(app, letter.source), window)
                except EventError as exc:
                    letter.problem = str(exc)
                    continue
                if event.tenant not in tenants:
                    letter.problem = f"unknown tenant {quote(event.tenant)}"
        return total, letters
    finally:
        client.close()


def replay_dead_letters(
    app: App, ids: list[str] | None, *, force: bool = False, dry_run: bool = False, limit: int = 10_000
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Append dead letters back to the stream they came from, keeping their original event id
    (explicit, or the one their entry id gave them) so a replay twice counts once; then delete them
    from the dead-letter stream. Letters that would fail again are kept unless ``force``.
    Returns (replayed, kept)."""
    _, letters = list_dead_letters(app, limit=limit, check=True)
    if ids:
        wanted = set(ids)
        letters = [x for x in letters if x.id in wanted or x.source_id in wanted]
    go = [x for x in letters if force or x.problem is None]
    kept = [x for x in letters if x not in go]
    if dry_run or not go:
        return go, kept
    client = StreamClient(app.config.redis_url)
    try:
        by_stream: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in go:
            by_stream[letter.source or stream_names(app)[0]].append(letter)
        for stream, group in by_stream.items():
            items: list[dict[str, str]] = []
            for letter in group:
                fields = dict(letter.fields)
                fields.setdefault("event_id", id_prefix(app, letter.source) + letter.source_id)
                fields.setdefault("ts", str(id_ms(letter.source_id)))  # the time it was first sent
                items.append(fields)
            # Appended before deleted: a crash in between replays twice, which counts once (same event id).
            client.add_entries(stream, items)
            client.delete_entries(dead_letter_name(app), [x.id for x in group])
        return go, kept
    finally:
        client.close()


# -- the dedupe window ----------------------------------------------------------------------------
SEEN_BRIN = "ix_seen_event_seen_at"  # migration 0006, PostgreSQL only
SEEN_BRIN_PAGES = 32  # its pages_per_range


@dataclass
class PruneResult:
    dropped: int
    cutoff: int  # epoch seconds: ids first counted before this were forgotten
    warning: str | None = None  # the BRIN index could not be maintained (pruning still correct)


def prune_seen(app: App, *, dry_run: bool = False, now: float | None = None) -> PruneResult:
    """Forget event ids counted more than ``usage.dedupe_days`` before ``now`` (default: now).

    PostgreSQL reads only the block ranges that can hold old ids, through the BRIN index on
    ``seen_at``: the cost follows what is removed, not the 45 days kept. SQLite scans the table:
    cheap next to deleting the ids themselves (measured: ``python -m benchmarks prune``)."""
    cutoff = int((time.time() if now is None else now) - timedelta(days=app.config.usage.dedupe_days).total_seconds())
    table = table_of(SeenEvent)
    old = table.c.seen_at < cutoff
    with app.uow(dry_run=dry_run) as uow:
        conn = uow.connection
        if conn.dialect.name == "postgresql":
            # The planner underrates the BRIN index once freed pages have been reused (the table is
            # then in day order only range by range) and would scan all of it.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        if dry_run:
            count = conn.execute(sa.select(sa.func.count()).select_from(table).where(old))
            return PruneResult(int(count.scalar() or 0), cutoff)
        if conn.dialect.name != "postgresql":
            return PruneResult(int(conn.execute(sa.delete(table).where(old)).rowcount or 0), cutoff)
        return _prune_pg(conn, cutoff)


def _prune_pg(conn: sa.Connection, cutoff: int) -> PruneResult:
    """Delete the old ids and keep the BRIN summaries exact. A range's summary only ever widens:
    once the pages freed by a prune are reused by new ids, the range would keep its old minimum and
    be read by every later prune (the cost creeping back to a full scan, measured). So the ranges
    this prune deletes from are desummarized, and the next prune first summarizes every range
    without a summary, from the ids live by then (their dead ones gone). Unsummarized ranges are
    always read, never skipped: correctness never depends on any of this."""
    warning = _brin(conn, "SELECT brin_summarize_new_values(CAST(:index AS regclass))", {})
    ranges = conn.execute(
        sa.text(
            "WITH gone AS (DELETE FROM seen_event WHERE seen_at < :cutoff RETURNING ctid) "
            "SELECT CAST((CAST(CAST(ctid AS text) AS point))[0] AS bigint) / :pages, count(*) FROM gone GROUP BY 1"
        ),
        {"cutoff": cutoff, "pages": SEEN_BRIN_PAGES},
    ).all()
    if ranges:
        warning = warning or _brin(
            conn,
            "SELECT count(brin_desummarize_range(CAST(:index AS regclass), r * :pages)) "
            "FROM unnest(CAST(:ranges AS bigint[])) AS r",
            {"ranges": [r for r, _ in ranges], "pages": SEEN_BRIN_PAGES},
        )
    return PruneResult(sum(n for _, n in ranges), cutoff, warning)


def _brin(conn: sa.Connection, statement: str, params: dict[str, object]) -> str | None:
    """Maintain the BRIN index in a savepoint; a failure (the role does not own the index, or the
    index is missing) makes pruning slower over time, never wrong: say so instead of failing."""
    try:
        with conn.begin_nested():
            conn.execute(sa.text(statement), {"index": SEEN_BRIN, **params})
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return (
            f"the index {SEEN_BRIN} was not maintained ({reason}); pruning reads more of seen_event "
            "over time: run `usage prune` as the database role that ran `db upgrade`"
        )
    return None
