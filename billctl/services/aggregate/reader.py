"""The reader thread: new entries (XREADGROUP) and claimed ones, parsed ahead of the writer."""

from __future__ import annotations

import queue
import threading
import time

from billctl.services.aggregate.parser import Chunk, Parser
from billctl.services.context import App
from billctl.stream.redis_stream import Entry, StreamClient

IDLE = object()  # the reader found nothing new (drain: the stream is drained)

DONE = object()  # the reader stopped


class Reader(threading.Thread):
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
                if self.stop.is_set() and item is not DONE:
                    return

    def _count(self) -> int:
        return self.count if self.left is None else max(1, min(self.count, self.left))

    def _took(self, n: int) -> None:
        if self.left is not None:
            self.left = max(0, self.left - n)

    def _claimed(self, stream: str, entries: list[Entry], vanished: list[bytes]) -> int:
        self._took(len(entries))
        if entries or vanished:
            chunk = Chunk(stream, entries, claimed=True, vanished=len(vanished))
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
                        chunk = Chunk(stream, entries)
                        self.parser.parse(chunk)
                        self._put(chunk)
                if not got:
                    self._put(IDLE)
                    if not self.follow:
                        return
        except BaseException as exc:  # handed to the writer, which raises it
            self.error = exc
        finally:
            self._put(DONE)
