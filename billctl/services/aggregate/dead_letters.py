"""Dead letters (DESIGN.md invariant 2): a bad entry is acknowledged and copied, with its reason, to
the dead-letter stream in one atomic step, after the batch's transaction committed."""

from __future__ import annotations

from collections import Counter, defaultdict

from billctl.services.aggregate.parser import Chunk
from billctl.services.aggregate.report import AggregateReport, reason_kind
from billctl.stream.redis_stream import StreamClient


def dead_letter_batch(
    client: StreamClient, group: str, dead_letter: str, chunks: list[Chunk], report: AggregateReport
) -> set[tuple[str, bytes]]:
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
        added = client.dead_letter(stream, group, dead_letter, [(i[2], i[3]) for i in items])
        for (where, reason, entry_key, _), new in zip(items, added, strict=True):
            handled.add((stream, entry_key))
            if new:
                written.append((where, reason))
            else:
                report.duplicates += 1
    report.rejected = written
    report.dead_lettered += len(written)
    report.acked += len(written)  # the script acknowledged them
    report.dead_reasons = Counter(reason_kind(reason) for _, reason in written)
    return handled
