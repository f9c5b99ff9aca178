"""Reading usage files: NDJSON events (the stream contract) and Envoy/Istio JSON access logs, one
line at a time, each bad line that line's problem only."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO

from billctl.core.bounds import quote
from billctl.core.events import Event, EventError, Window, parse_event

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
            # the access log calls the timestamp start_time: name the field as the file does
            yield where, EventError(str(exc).replace("ts ", "start_time ", 1)) if str(exc).startswith("ts") else exc


def detect_format(handle: io.BufferedReader) -> str:
    """'envoy' when the first line looks like an access log (start_time + response_code), else
    'events'. Only peeks: the handle is left where it was."""
    first = handle.peek(MAX_LINE_BYTES).split(b"\n", 1)[0]
    try:
        data = json.loads(first)
    except (ValueError, RecursionError):
        return "events"
    return "envoy" if isinstance(data, dict) and "start_time" in data and "response_code" in data else "events"
