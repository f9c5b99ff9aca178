"""The stream reader's fast path gives exactly the rows of the general path (parse_flat +
apply_events' own keying), and leaves everything unusual to the general path."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.config import load_config
from billctl.services.aggregate import Chunk as _Chunk
from billctl.services.aggregate import Parser
from billctl.services.context import App
from billctl.services.usage import TenantInfo, event_key

TENANTS = {"acme": TenantInfo(1, "UTC"), "globex": TenantInfo(2, "Asia/Kolkata")}
NOW = int(time.time() * 1000)

values = st.one_of(
    st.sampled_from([b"acme", b"globex", b"nobody", b"", b"1", b"007", b"0", b"12x", b"-3", "é".encode()]),
    st.integers(min_value=0, max_value=NOW + 10**9).map(lambda n: str(n).encode()),
    st.binary(max_size=8),
    st.text(max_size=5).map(str.encode),
    st.just(b"x" * 201),
)
entries = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from([b"tenant_id", b"endpoint", b"ts", b"units", b"event_id", b"extra"]), values),
            max_size=6,
        ),
        st.integers(min_value=1, max_value=NOW),
    ),
    max_size=30,
)


def _parser() -> Parser:
    app = App(config=load_config(None, {"usage.bucket_seconds": "300"}, env={}))
    return Parser(app, TENANTS)


def _general(parser: Parser, chunk: _Chunk) -> dict[int, tuple[int, int, str, int]]:
    events, _dead = parser.parse_slow(chunk)
    rows = {}
    for _, event in events:
        info = TENANTS.get(event.tenant)
        if info is None:
            continue
        rows.setdefault(
            event_key(info.id, event.event_id),
            (info.id, event.ts_ms // 1000 // 300 * 300, event.endpoint, event.units),
        )
    return rows


@settings(max_examples=300, deadline=None)
@given(entries)
def test_fast_path_rows_equal_the_general_path(raw: list) -> None:
    parser = _parser()
    built = []
    for n, (pairs, ms) in enumerate(raw):
        flat = [x for pair in pairs for x in pair]
        built.append((f"{ms}-{n}".encode(), flat))
    fast = _Chunk("s", list(built))
    parser.parse(fast)
    every = _Chunk("s", None, slow=list(built))  # the same entries, all through the general path
    expected = _general(parser, every)
    leftovers = _general(parser, fast)
    merged = dict(fast.rows)
    for key, row in leftovers.items():
        merged.setdefault(key, row)
    assert merged == expected
    assert fast.ids == [entry_id for entry_id, _ in built]


def test_a_typical_entry_takes_the_fast_path() -> None:
    parser = _parser()
    flat = [
        b"tenant_id",
        b"acme",
        b"endpoint",
        b"/v1/ocr",
        b"ts",
        str(NOW).encode(),
        b"units",
        b"3",
        b"event_id",
        b"req-1",
    ]
    chunk = _Chunk("s", [(b"1-0", flat), (b"1-1", flat), (b"1-2", flat[:8])])
    parser.parse(chunk)
    assert chunk.duplicates == 1 and len(chunk.rows) == 1
    assert [entry_id for entry_id, _ in chunk.slow] == [b"1-2"]  # no event_id: the general path
    ((key, row),) = chunk.rows.items()
    assert key == event_key(1, "req-1") and row == (1, NOW // 300_000 * 300, "/v1/ocr", 3)
