"""A verified Stripe webhook receiver: the push-style twin of ``stripe sync-status``.

Each POST is checked against the ``Stripe-Signature`` header (HMAC-SHA256 with the endpoint's
signing secret, timestamp within 300 s, as ``stripe.WebhookSignature`` does), then applied with the
same ``apply_event`` as sync-status, in one transaction that also records the event id: a
redelivered event is acknowledged and ignored. Bad signatures get 400 and change nothing; a
failure while applying gets 500 so Stripe retries later.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import stripe

from billctl.errors import redact
from billctl.services.context import App
from billctl.services.stripe_sync import Change, apply_event

MAX_BODY = 1 << 20
TOLERANCE_SECONDS = 300


def handle(app: App, secret: str, payload: bytes, signature: str | None) -> tuple[int, dict[str, Any], Change | None]:
    """(HTTP status, JSON body, what changed). Pure of HTTP so it can be tested directly."""
    if not signature:
        return 400, {"error": "missing Stripe-Signature header"}, None
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        return 400, {"error": f"signature verification failed: {redact(exc)}"}, None
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return 400, {"error": "not a Stripe event"}, None
    with app.uow() as uow:
        change = apply_event(uow.session, app, event, "webhook")
    duplicate = change.note == "duplicate event"
    return 200, {"received": True, "duplicate": duplicate, "applied": change.applied}, change


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - our own log line instead
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._reply(200 if self.path in ("/", "/healthz") else 404, {"ok": self.path in ("/", "/healthz")})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": "payload too large"})
            return
        payload = self.rfile.read(length)
        try:
            status, body, change = handle(
                self.server.app, self.server.secret, payload, self.headers.get("Stripe-Signature")
            )
        except Exception as exc:  # noqa: BLE001 - answer 500 so Stripe redelivers; say why on stderr
            status, body, change = 500, {"error": "could not apply the event"}, None
            self.server.log(f"error applying an event: {type(exc).__name__}: {redact(exc)}")
        self._reply(status, body)
        self.server.on_result(status, body, change)


class WebhookServer(HTTPServer):
    """One request at a time (events are applied in arrival order)."""

    def __init__(
        self,
        app: App,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_result: Callable[[int, dict[str, Any], Change | None], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.secret = secret
        self._on_result = on_result
        self.log = log or (lambda _msg: None)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def on_result(self, status: int, body: dict[str, Any], change: Change | None) -> None:
        if self._on_result is not None:
            self._on_result(status, body, change)

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return thread
