"""FakeStripe: a stateful, Stripe-compatible HTTP server for tests (stdlib only, 127.0.0.1).

The official ``stripe`` SDK talks to it over real HTTP::

    with FakeStripe() as fake:
        client = StripeClient("sk_test_123", base_addresses={"api": fake.url}, max_network_retries=2)
        client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})

Request parameters are validated against the SDK's own TypedDicts (``stripe.params``); idempotency,
faults (status codes, ``Stripe-Should-Retry``, delays, dropped connections, responses lost after the
request took effect), rate limiting, events and signed webhooks behave like Stripe's.
See the package README (``tests/fakestripe/README.md``) for the exact API and its deviations.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import queue
import re
import socket
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from . import resources
from .resources import StripeState, expand, new_id, public
from .validation import ParamError, decode_form, params_class, validate

__all__ = ["Fault", "FakeClock", "FakeStripe", "LoggedRequest", "WebhookDelivery"]

try:  # the API version of the installed SDK, echoed in Stripe-Version and events
    from stripe._api_version import _ApiVersion

    DEFAULT_API_VERSION = _ApiVersion.CURRENT
except Exception:  # noqa: BLE001
    DEFAULT_API_VERSION = resources.API_VERSION_FALLBACK

_ID = r"(?P<id>[^/]+)"
# (method, path regex, stripe.params TypedDict, StripeState method)
ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    (m, re.compile(p), c, h) for m, p, c, h in [
        ("POST", r"/v1/customers", "CustomerCreateParams", "create_customer"),
        ("GET", r"/v1/customers", "CustomerListParams", "list_customers"),
        ("GET", r"/v1/customers/search", "CustomerSearchParams", "search_customers"),
        ("GET", rf"/v1/customers/{_ID}", "CustomerRetrieveParams", "retrieve_customer"),
        ("POST", rf"/v1/customers/{_ID}", "CustomerUpdateParams", "update_customer"),
        ("DELETE", rf"/v1/customers/{_ID}", "CustomerDeleteParams", "delete_customer"),
        ("POST", r"/v1/invoiceitems", "InvoiceItemCreateParams", "create_invoiceitem"),
        ("GET", r"/v1/invoiceitems", "InvoiceItemListParams", "list_invoiceitems"),
        ("GET", rf"/v1/invoiceitems/{_ID}", "InvoiceItemRetrieveParams", "retrieve_invoiceitem"),
        ("POST", rf"/v1/invoiceitems/{_ID}", "InvoiceItemUpdateParams", "update_invoiceitem"),
        ("DELETE", rf"/v1/invoiceitems/{_ID}", "InvoiceItemDeleteParams", "delete_invoiceitem"),
        ("POST", r"/v1/invoices", "InvoiceCreateParams", "create_invoice"),
        ("GET", r"/v1/invoices", "InvoiceListParams", "list_invoices"),
        ("GET", r"/v1/invoices/search", "InvoiceSearchParams", "search_invoices"),
        ("GET", rf"/v1/invoices/{_ID}", "InvoiceRetrieveParams", "retrieve_invoice"),
        ("POST", rf"/v1/invoices/{_ID}", "InvoiceUpdateParams", "update_invoice"),
        ("DELETE", rf"/v1/invoices/{_ID}", "InvoiceDeleteParams", "delete_invoice"),
        ("GET", rf"/v1/invoices/{_ID}/lines", "InvoiceLineItemListParams", "list_invoice_lines"),
        ("POST", rf"/v1/invoices/{_ID}/finalize", "InvoiceFinalizeInvoiceParams", "finalize_invoice"),
        ("POST", rf"/v1/invoices/{_ID}/pay", "InvoicePayParams", "pay_invoice"),
        ("POST", rf"/v1/invoices/{_ID}/void", "InvoiceVoidInvoiceParams", "void_invoice"),
        ("POST", rf"/v1/invoices/{_ID}/mark_uncollectible", "InvoiceMarkUncollectibleParams",
         "mark_uncollectible"),
        ("POST", rf"/v1/invoices/{_ID}/send", "InvoiceSendInvoiceParams", "send_invoice"),
        # credit notes (credit_notes.py)
        ("POST", r"/v1/credit_notes", "CreditNoteCreateParams", "create_credit_note"),
        ("GET", r"/v1/credit_notes", "CreditNoteListParams", "list_credit_notes"),
        ("GET", rf"/v1/credit_notes/{_ID}", "CreditNoteRetrieveParams", "retrieve_credit_note"),
        ("POST", rf"/v1/credit_notes/{_ID}", "CreditNoteUpdateParams", "update_credit_note"),
        ("GET", rf"/v1/credit_notes/{_ID}/lines", "CreditNoteListLinesParams", "list_credit_note_lines"),
        ("POST", rf"/v1/credit_notes/{_ID}/void", "CreditNoteVoidCreditNoteParams", "void_credit_note"),
        ("GET", r"/v1/events", "EventListParams", "list_events"),
        # coupons and customer discounts (discounts.py)
        ("POST", r"/v1/coupons", "CouponCreateParams", "create_coupon"),
        ("GET", rf"/v1/coupons/{_ID}", "CouponRetrieveParams", "retrieve_coupon"),
        ("DELETE", rf"/v1/customers/{_ID}/discount", "CustomerDeleteDiscountParams", "delete_customer_discount"),
        ("GET", rf"/v1/events/{_ID}", "EventRetrieveParams", "retrieve_event"),
    ]
]

_STATUS_ERRORS: dict[int, dict[str, Any]] = {
    400: {"type": "invalid_request_error", "message": "Invalid request (injected fault)."},
    401: {"type": "invalid_request_error", "message": "Invalid API Key provided (injected fault)."},
    402: {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
          "message": "Your card was declined."},
    403: {"type": "invalid_request_error", "message": "The provided key does not have access (injected fault)."},
    404: {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object (injected fault)."},
    409: {"type": "invalid_request_error", "code": "lock_timeout",
          "message": "This object cannot be accessed right now because another API request or Stripe process "
                     "is currently accessing it (injected fault)."},
    429: {"type": "invalid_request_error", "code": "rate_limit",
          "message": "Request rate limit exceeded. Learn more about rate limits here "
                     "https://stripe.com/docs/rate-limits."},
}
_SERVER_ERROR = {"type": "api_error",
                 "message": "Sorry, something went wrong. We've already been notified of the problem, but if "
                            "you need any help, you can reach us at support.stripe.com/contact."}


class FakeClock:
    """Controllable time in whole seconds (Stripe timestamps). Starts at the real time."""

    def __init__(self, start: float | None = None) -> None:
        self._t = float(time.time() if start is None else start)
        self._lock = threading.Lock()
        self.on_advance: Any = None  # set by FakeStripe: runs Stripe's background automation

    def now(self) -> int:
        with self._lock:
            return int(self._t)

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._t += seconds
            now = int(self._t)
        if self.on_advance is not None:
            self.on_advance()
        return now


@dataclass
class Fault:
    """One injected fault; ``remaining`` counts the matching requests it still applies to."""

    method: str | None
    path_regex: str
    status: int | None
    should_retry: bool | None
    delay: float
    drop_connection: bool
    after_processing: bool
    remaining: int
    error: dict[str, Any] | None = None
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_regex)

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining > 0 and (self.method is None or self.method == method)
                and self._pattern.search(path) is not None)


class LoggedRequest(NamedTuple):
    timestamp: float  # real time.time() when the response was sent (or the connection dropped)
    method: str
    path: str  # without the query string
    status: int | None  # None: the connection was dropped without a response
    idempotency_key: str | None
    received: float = 0.0  # real time.time() when the request arrived (rates are measured on this)
    stripe_version: str | None = None  # the request's Stripe-Version header (None: the account default)


class WebhookDelivery(NamedTuple):
    endpoint_url: str
    event_id: str
    event_type: str
    status: int | None  # HTTP status the endpoint answered, None if it could not be reached
    error: str | None


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    created: int
    request_id: str
    response: _Response | None = None  # None while the first request is in flight


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def version_string(self) -> str:
        return "nginx"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _dispatch(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeStripe:
    """A stateful fake of the Stripe v1 API subset billctl uses. See the module docstring."""

    def __init__(self, *, api_key_prefix: str | tuple[str, ...] = "sk_test_", webhook_secret: str = "whsec_test",
                 rate_limit: float | None = None, idempotency_ttl_seconds: int = 86400,
                 search_lag_seconds: int = 0, automatic_collection: bool = True,
                 start_time: float | None = None) -> None:
        prefixes = (api_key_prefix,) if isinstance(api_key_prefix, str) else tuple(api_key_prefix)
        # restricted keys (rk_) work wherever the matching secret keys (sk_) do
        self.api_key_prefixes = tuple(dict.fromkeys(
            [*prefixes, *("rk_" + p[3:] for p in prefixes if p.startswith("sk_"))]))
        self.webhook_secret = webhook_secret
        self.rate_limit = rate_limit
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.automatic_collection = automatic_collection
        self.api_version = DEFAULT_API_VERSION
        self.clock = FakeClock(start_time)
        self.clock.on_advance = self._after_advance
        self._lock = threading.RLock()
        self.state = StripeState(self.clock.now, search_lag_seconds=search_lag_seconds,
                                 on_event=self._on_event, api_version=self.api_version)
        self.faults: list[Fault] = []
        self.request_log: list[LoggedRequest] = []
        self.server_errors: list[str] = []  # tracebacks of bugs in the fake (tests should assert empty)
        self.webhook_endpoints: list[dict[str, Any]] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._idempotency: dict[tuple[str, str], _IdempotencyEntry] = {}
        self._random_faults: tuple[float, tuple[int, ...], float, Any] | None = None
        self._arrival = threading.local()  # (time.time(), time.monotonic()) of the request being handled
        self._recent: deque[float] = deque()
        self._webhook_queue: queue.Queue[tuple[dict[str, Any], dict[str, Any], bytes] | None] = queue.Queue()
        self._webhook_pending = 0
        self._webhook_cond = threading.Condition()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeStripe:
        if self._server is not None:
            return self
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="fakestripe-http", daemon=True)
        hooks = threading.Thread(target=self._deliver_webhooks, name="fakestripe-webhooks", daemon=True)
        self._threads = [serve, hooks]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._webhook_queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None
        self._threads = []

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, api_key: str = "sk_test_fakestripe", **kwargs: Any) -> Any:
        """A ``stripe.StripeClient`` pointed at this server (keyword arguments pass through)."""
        from stripe import StripeClient

        return StripeClient(api_key, base_addresses={"api": self.url}, **kwargs)

    # ------------------------------------------------------------------------------ inspection
    @property
    def customers(self) -> dict[str, dict[str, Any]]:
        return self.state.customers

    @property
    def invoices(self) -> dict[str, dict[str, Any]]:
        return self.state.invoices

    @property
    def invoiceitems(self) -> dict[str, dict[str, Any]]:
        return self.state.invoiceitems

    @property
    def credit_notes(self) -> dict[str, dict[str, Any]]:
        return self.state.credit_notes

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.state.events

    def now(self) -> int:
        return self.clock.now()

    def advance(self, seconds: float) -> int:
        """Move the fake clock forward; then Stripe's background work that became due happens
        (auto_advance drafts are finalized an hour after creation, failed payments are retried)."""
        return self.clock.advance(seconds)

    def _after_advance(self) -> None:
        if self.automatic_collection:
            with self._lock:
                self.state.run_automation()

    def reset(self) -> None:
        """Forget every object, event, idempotency key, fault, log entry and payment outcome."""
        with self._lock:
            on_event, lag = self.state.on_event, self.state.search_lag_seconds
            self.state = StripeState(self.clock.now, search_lag_seconds=lag, on_event=on_event,
                                     api_version=self.api_version)
            self.faults.clear()
            self.request_log.clear()
            self.server_errors.clear()
            self.webhook_deliveries.clear()
            self._idempotency.clear()
            self._recent.clear()
            self._random_faults = None

    # ------------------------------------------------------------------------------ behaviours
    def inject(self, *, method: str | None = None, path_regex: str = ".*", status: int | None = None,
               should_retry: bool | None = None, delay: float = 0, drop_connection: bool = False,
               times: int = 1, after_processing: bool = False, error: dict[str, Any] | None = None) -> Fault:
        """Queue a fault for the next ``times`` requests matching ``method`` (None: any) and
        ``path_regex`` (``re.search`` on the path). Faults are consumed FIFO.

        Without ``after_processing`` the request has no effect: after ``delay`` seconds it is answered
        with ``status`` (Stripe's error body for it, or ``error``) or the connection is closed
        without a response. A fault with neither status nor drop_connection only delays the request
        (its idempotency key is "in use" meanwhile). With ``after_processing=True`` the request takes
        effect (and its idempotency result is stored) and the fault replaces the response.
        ``should_retry`` sets ``Stripe-Should-Retry: true|false`` (None: header absent)."""
        if status is None and not drop_connection and not delay:
            raise ValueError("a fault needs a status, drop_connection or a delay")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(method.upper() if method else None, path_regex, status, should_retry, float(delay),
                      drop_connection, after_processing, times, error)
        with self._lock:
            self.faults.append(fault)
        return fault

    def random_faults(self, probability: float, statuses: tuple[int, ...] = (429, 500), *,
                      after_processing_share: float = 0.5, seed: int | None = 0) -> None:
        """From now on, answer a random ``probability`` share of requests (those no queued fault
        claims) with one of ``statuses``, chosen evenly. A 429 is refused before any effect (as
        Stripe's rate limiter does); a 5xx takes effect first in ``after_processing_share`` of cases
        (the answer is lost, the change is made), else before. ``probability=0`` turns this off."""
        import random

        if not 0 <= probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        with self._lock:
            self._random_faults = (
                (probability, tuple(statuses), after_processing_share, random.Random(seed)) if probability else None
            )

    def _random_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            if self._random_faults is None:
                return None
            probability, statuses, share, rng = self._random_faults
            if rng.random() >= probability:
                return None
            status = rng.choice(statuses)
            after = status >= 500 and rng.random() < share
        fault = Fault(method, ".*", status, None, 0.0, False, after, 1)
        fault.hits = 1
        return fault

    def forget_idempotency_keys(self) -> int:
        """Forget every stored idempotency key now (as Stripe does after about 24 hours; advancing
        the clock past ``idempotency_ttl_seconds`` does the same). Returns how many were dropped."""
        with self._lock:
            count = len(self._idempotency)
            self._idempotency = {k: v for k, v in self._idempotency.items() if v.response is None}
            return count - len(self._idempotency)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    # ----------------------------------------------------------- discounts and search (controls)
    def give_customer_discount(self, customer_id: str, coupon_id: str) -> dict[str, Any]:
        """Attach a coupon to a customer, as the Dashboard or Checkout can (the API no longer can):
        invoices created without ``discounts`` then inherit it. Returns the discount."""
        with self._lock:
            return public(self.state.give_customer_discount(customer_id, coupon_id))

    @property
    def search_available(self) -> bool:
        return self.state.search_available

    @search_available.setter
    def search_available(self, available: bool) -> None:
        """False: every search request is refused as Stripe refuses accounts without search (India)."""
        with self._lock:
            self.state.search_available = available

    def set_payment_outcome(self, customer: str, outcome: str) -> None:
        """Payments of this customer (its id, its email, or the value of a metadata key containing
        "tenant", e.g. ``metadata[tenant_id]``; "*" for everyone) succeed or fail."""
        if outcome not in ("succeed", "fail"):
            raise ValueError("outcome must be 'succeed' or 'fail'")
        with self._lock:
            self.state.payment_outcomes.pop(customer, None)
            self.state.payment_outcomes[customer] = outcome

    def pay_part(self, invoice_id: str, amount: int) -> dict[str, Any]:
        """The customer pays ``amount`` (Stripe's units) of an open invoice through Stripe, as a
        partial payment: ``amount_paid`` up, ``amount_remaining`` down (all of it: paid)."""
        with self._lock:
            return public(self.state.pay_part(invoice_id, amount))

    # -------------------------------------------------------------------------------- webhooks
    def add_webhook_endpoint(self, url: str, enabled_events: list[str] | None = None) -> dict[str, Any]:
        """Deliver every later event (or those in ``enabled_events``) to ``url``, signed."""
        endpoint = {"id": new_id("we_"), "object": "webhook_endpoint", "url": url,
                    "enabled_events": list(enabled_events or ["*"]), "secret": self.webhook_secret,
                    "status": "enabled", "api_version": self.api_version}
        with self._lock:
            self.webhook_endpoints.append(endpoint)
        return endpoint

    def sign(self, payload: bytes | str, timestamp: int | None = None) -> str:
        """The ``Stripe-Signature`` header value for ``payload``: ``t=<ts>,v1=<hex hmac-sha256>``.
        The timestamp is the real time (``construct_event`` checks it against ``time.time()``)."""
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        timestamp = int(time.time()) if timestamp is None else int(timestamp)
        signature = hmac.new(self.webhook_secret.encode("utf-8"), f"{timestamp}.{payload}".encode(),
                             hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={signature}"

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until every queued webhook delivery was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._webhook_cond:
            while self._webhook_pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._webhook_cond.wait(remaining)
        return True

    def _on_event(self, event: dict[str, Any]) -> int:
        targets = [e for e in self.webhook_endpoints
                   if "*" in e["enabled_events"] or event["type"] in e["enabled_events"]]
        if targets:
            body = public(event)
            body["pending_webhooks"] = len(targets)
            payload = json.dumps(body, indent=2).encode("utf-8")
            with self._webhook_cond:
                self._webhook_pending += len(targets)
            for endpoint in targets:
                self._webhook_queue.put((endpoint, event, payload))
        return len(targets)

    def _deliver_webhooks(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            job = self._webhook_queue.get()
            if job is None:
                return
            endpoint, event, payload = job
            status: int | None = None
            error: str | None = None
            try:
                request = urllib.request.Request(
                    endpoint["url"], data=payload, method="POST",
                    headers={"Content-Type": "application/json; charset=utf-8",
                             "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                             "Stripe-Signature": self.sign(payload)})
                with opener.open(request, timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status, error = exc.code, str(exc)
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.webhook_deliveries.append(
                    WebhookDelivery(endpoint["url"], event["id"], event["type"], status, error))
            with self._webhook_cond:
                self._webhook_pending -= 1
                self._webhook_cond.notify_all()

    # -------------------------------------------------------------------------------- requests
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    fault.hits += 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _error(self, status: int, error: dict[str, Any], request_id: str,
               headers: dict[str, str] | None = None) -> _Response:
        error = dict(error)
        if error.get("code") and "doc_url" not in error:
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{error['code'].replace('_', '-')}"
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}?t={self.clock.now()}"
        body = json.dumps({"error": error}, indent=2).encode("utf-8")
        return _Response(status, body, dict(headers or {}))

    def _fault_response(self, fault: Fault, request_id: str) -> _Response:
        assert fault.status is not None
        error = fault.error or _STATUS_ERRORS.get(fault.status) or (
            _SERVER_ERROR if fault.status >= 500 else {"type": "invalid_request_error",
                                                       "message": f"Injected HTTP {fault.status}."})
        headers = {}
        if fault.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        return self._error(fault.status, error, request_id, headers)

    def _api_key(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip()).decode("utf-8").split(":", 1)[0] or None
            except Exception:  # noqa: BLE001
                return None
        return None

    def _handle(self, handler: _Handler) -> None:
        self._arrival.at = (time.time(), time.monotonic())
        method = handler.command
        split = urlsplit(handler.path)
        path, query = split.path, split.query
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = handler.rfile.read(length) if length > 0 else b""
        idempotency_key = handler.headers.get("Idempotency-Key") if method == "POST" else None
        request_id = new_id("req_", 14)

        fault = self._take_fault(method, path) or self._random_fault(method, path)
        if fault is not None and not fault.after_processing and (fault.status is not None or fault.drop_connection):
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop_connection:
                self._drop(handler, method, path, idempotency_key)
            else:
                self._send(handler, self._fault_response(fault, request_id), method, path, idempotency_key,
                           request_id)
            return

        pre_delay = fault.delay if fault is not None and not fault.after_processing else 0.0
        try:
            response = self._process(handler, method, path, query, body, request_id, idempotency_key, pre_delay)
        except Exception:  # noqa: BLE001 - a bug in the fake: answer like Stripe's 500, keep the trace
            self.server_errors.append(traceback.format_exc())
            response = self._error(500, _SERVER_ERROR, request_id)

        if fault is not None and fault.after_processing:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop_connection:
                self._drop(handler, method, path, idempotency_key)
                return
            if fault.status is not None:
                response = self._fault_response(fault, request_id)
        self._send(handler, response, method, path, idempotency_key, request_id)

    def _process(self, handler: _Handler, method: str, path: str, query: str, body: bytes, request_id: str,
                 idempotency_key: str | None, pre_delay: float) -> _Response:
        api_key = self._api_key(handler.headers.get("Authorization"))
        if api_key is None:
            return self._error(401, {
                "type": "invalid_request_error",
                "message": "You did not provide an API key. You need to provide your API key in the "
                           "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                           "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                           "or we can help at https://support.stripe.com/."}, request_id)
        if not api_key.startswith(self.api_key_prefixes):
            return self._error(401, {"type": "invalid_request_error", "code": "api_key_invalid",
                                     "message": f"Invalid API Key provided: {api_key[:8]}****{api_key[-4:]}"},
                               request_id)
        if self.rate_limit is not None and not self._admit():
            return self._error(429, _STATUS_ERRORS[429], request_id)

        route = None
        for route_method, pattern, class_name, handler_name in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                route = (class_name, handler_name, [unquote(g) for g in match.groups()])
                break
        if route is None:
            return self._error(404, {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                           "or we can help at https://support.stripe.com/."}, request_id)
        class_name, handler_name, args = route

        try:
            raw = decode_form(query) if method in ("GET", "DELETE") else {**decode_form(query), **decode_form(body)}
        except ParamError as exc:
            return self._error(exc.status, exc.error, request_id)

        entry_key: tuple[str, str] | None = None
        if idempotency_key is not None:
            if len(idempotency_key) > 255:
                return self._error(400, {"type": "invalid_request_error",
                                         "message": "Idempotency-Key must be at most 255 characters long."},
                                   request_id)
            entry_key = (api_key, idempotency_key)
            fingerprint = json.dumps([method, path, raw], sort_keys=True)
            with self._lock:
                entry = self._idempotency.get(entry_key)
                if (entry is not None and entry.response is not None
                        and self.clock.now() - entry.created >= self.idempotency_ttl_seconds):
                    del self._idempotency[entry_key]
                    entry = None
                if entry is not None:
                    if entry.response is None:
                        return self._error(409, {
                            "type": "invalid_request_error", "code": "idempotency_key_in_use",
                            "message": "There is currently another in-progress request using this "
                                       f"idempotency key ('{idempotency_key}'). Please try again later."},
                            request_id, {"Stripe-Should-Retry": "true"})
                    if entry.fingerprint != fingerprint:
                        return self._error(400, {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters "
                                       "they were first used with. Try using a key other than "
                                       f"'{idempotency_key}' if you meant to execute a different request."},
                            request_id)
                    replay = entry.response
                    headers = {**replay.headers, "Idempotent-Replayed": "true",
                               "Original-Request": entry.request_id}
                    return _Response(replay.status, replay.body, headers)
                self._idempotency[entry_key] = _IdempotencyEntry(fingerprint, self.clock.now(), request_id)

        try:
            if pre_delay:
                time.sleep(pre_delay)
            try:
                params = validate(params_class(class_name), raw)
            except ParamError as exc:  # invalid parameters: no idempotent result is saved (as Stripe)
                if entry_key is not None:
                    with self._lock:
                        self._idempotency.pop(entry_key, None)
                    entry_key = None
                return self._error(exc.status, exc.error, request_id)

            req = {"id": request_id, "idempotency_key": idempotency_key}
            with self._lock:
                try:
                    status, result = getattr(self.state, handler_name)(params, req, *args)
                    payload = public(result)
                    if params.get("expand"):
                        payload = expand(payload, params["expand"], self.state.lookup)
                    response = _Response(status, json.dumps(payload, indent=2).encode("utf-8"), {})
                except ParamError as exc:
                    response = self._error(exc.status, exc.error, request_id)
                if entry_key is not None:
                    self._idempotency[entry_key].response = response
                    entry_key = None
            return response
        finally:
            if entry_key is not None:  # an unexpected exception: release the key
                with self._lock:
                    self._idempotency.pop(entry_key, None)

    def _admit(self) -> bool:
        """Sliding one-second window of real time: at most ``rate_limit`` requests per second
        (by arrival time)."""
        now = getattr(self._arrival, "at", (0.0, time.monotonic()))[1]
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= (self.rate_limit or 0):
                return False
            self._recent.append(now)
            return True

    def _log(self, handler: _Handler, method: str, path: str, status: int | None,
             idempotency_key: str | None) -> None:
        with self._lock:
            received = getattr(self._arrival, "at", (time.time(), 0.0))[0]
            self.request_log.append(LoggedRequest(time.time(), method, path, status, idempotency_key, received,
                                                  handler.headers.get("Stripe-Version")))

    def _send(self, handler: _Handler, response: _Response, method: str, path: str,
              idempotency_key: str | None, request_id: str) -> None:
        self._log(handler, method, path, response.status, idempotency_key)
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(response.body)),
            "Request-Id": request_id,
            "Stripe-Version": handler.headers.get("Stripe-Version") or self.api_version,
            "Cache-Control": "no-cache, no-store",
            "Access-Control-Allow-Origin": "*",
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(response.headers)
        try:
            handler.send_response(response.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(response.body)
        except OSError:
            handler.close_connection = True

    def _drop(self, handler: _Handler, method: str, path: str, idempotency_key: str | None) -> None:
        self._log(handler, method, path, None, idempotency_key)
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)
