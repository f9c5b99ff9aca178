"""Parsing stream entries into bucket rows: a fast path for the common well-formed entry, and the
general path (``parse_flat``) for everything else."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from billctl.core.events import MAX_FIELD, Event, EventError, parse_flat
from billctl.services.aggregate.names import id_prefix, stream_names
from billctl.services.context import App
from billctl.services.usage import TenantInfo, event_window
from billctl.stream.redis_stream import Entry


@dataclass
class Chunk:
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
        # keyed by bytes | None: the fast path looks up a tenant_id field that may be missing
        self.directory: dict[bytes | None, tuple[int, bytes]] = {
            key.encode(): (info.id, info.person) for key, info in tenants.items()
        }

    def parse(self, chunk: Chunk) -> None:
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
            tenant = directory.get(fields.get(b"tenant_id"))
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

    def parse_slow(self, chunk: Chunk) -> tuple[list[tuple[str, Event]], list[tuple[str, str]]]:
        """The general path for the chunk's leftover entries: (where, event) for good ones and
        (where, reason) for bad ones; ``where`` is "stream/entry-id"."""
        window = event_window(self.config.usage)
        prefix = self.prefixes.get(chunk.stream, "")
        events: list[tuple[str, Event]] = []
        dead: list[tuple[str, str]] = []
        for entry_id, flat in chunk.slow:
            where = f"{chunk.stream}/{entry_id.decode()}"
            try:
                events.append((where, parse_flat(flat, entry_id, prefix, window)))
            except EventError as exc:
                dead.append((where, str(exc)))
        return events, dead
