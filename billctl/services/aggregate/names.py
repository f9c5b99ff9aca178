"""Names and connections the stream paths share: stream (shard) names, the dead-letter stream, this
consumer's name, the default event id prefix, and the claim interval check."""

from __future__ import annotations

import os
import socket

from billctl.errors import ConfigError
from billctl.services.context import App
from billctl.stream.redis_stream import StreamClient


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
