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

The package, by use case:

- ``run``: ``aggregate`` (drain or ``--follow``), the reader thread feeding the writer
- ``reader``: the reader thread (XREADGROUP, claims of idle and own pending entries)
- ``parser``: stream entries to bucket rows (fast path and general path)
- ``writer``: one transaction per batch (``count_chunks``, ``record_offsets``), then ack and trim
- ``dead_letters``: bad entries to the dead-letter stream, each once
- ``dry_run``: the same counting, rolled back
- ``names``: stream, consumer and dead-letter names; the claim interval check
"""

from billctl.services.aggregate.names import (
    check_claim_interval,
    client_for_thread,
    consumer_name,
    dead_letter_name,
    id_prefix,
    stream_names,
)
from billctl.services.aggregate.parser import Chunk, Parser
from billctl.services.aggregate.reader import Reader
from billctl.services.aggregate.report import AggregateReport
from billctl.services.aggregate.run import aggregate
from billctl.services.aggregate.writer import Writer, count_chunks, record_offsets
from billctl.stream.redis_stream import StreamClient

__all__ = [
    "AggregateReport",
    "Chunk",
    "Parser",
    "Reader",
    "StreamClient",
    "Writer",
    "aggregate",
    "check_claim_interval",
    "client_for_thread",
    "consumer_name",
    "count_chunks",
    "dead_letter_name",
    "id_prefix",
    "record_offsets",
    "stream_names",
]
