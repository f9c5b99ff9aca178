"""A small adapter over the official ``stripe`` SDK: the only module that talks to Stripe.

Every HTTP request (first attempts and retries alike) waits for the throttle. Retries happen here
(the SDK's own are off so none escapes the throttle): 429 with backoff unless Stripe says
``Stripe-Should-Retry: false``; 409 (lock or idempotency key in use), 5xx and connection errors.
Writes always carry an idempotency key, so a retry can never act twice. Results are plain dicts.

In a dry run, reads go to Stripe and writes do not: each write returns a stand-in object, so the
service runs exactly the code path of a real run without changing anything. Reads of what a dry run
"wrote" answer as Stripe would have: a stand-in draft's items are listed, its totals add them up.

A write whose first attempt Stripe answers as a replay (``Idempotent-Replayed``) did nothing now: its
key was used before, for an earlier request. Callers that must act (customer updates) say so with
``on_replay``.

``on_call`` (tests): called after each request that Stripe answered successfully, with its label;
raising from it simulates a crash between two Stripe calls.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import stripe

from billctl.errors import ConfigError, DependencyDown, StripeFailure, redact
from billctl.stripe.idempotency import resend_key
from billctl.stripe.keys import API_VERSION, StripeSettings
from billctl.stripe.status import StripeStatus
from billctl.stripe.throttle import Throttle

TIMEOUT_SECONDS = 30
BACKOFF_INITIAL = 0.5  # seconds before the first retry; doubles per retry (with jitter)
BACKOFF_MAX = 8.0


def _sdk(params: Mapping[str, Any]) -> Any:
    """Parameters as the SDK takes them. The SDK types each endpoint's parameters as its own TypedDict;
    billctl builds them as plain dicts in the pure rules (``billctl.stripe.mapping``), checked by the
    tests against the fake Stripe, so they pass through untyped here, in one place."""
    return params


def _describe(exc: stripe.StripeError) -> str:
    status = getattr(exc, "http_status", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    return redact(f"Stripe {status or 'error'}{f' {code}' if code else ''}: {message}")


def _header(exc: stripe.StripeError, name: str) -> str | None:
    headers = getattr(exc, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == name:
            return value
    return None


def _replayed(result: Any) -> bool:
    response = getattr(result, "last_response", None)
    headers = getattr(response, "headers", None) or {}
    return any(k.lower() == "idempotent-replayed" and str(v).lower() == "true" for k, v in dict(headers).items())


class Gateway:
    def __init__(
        self,
        settings: StripeSettings,
        *,
        dry_run: bool = False,
        on_call: Callable[[str], None] | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.on_call = on_call
        self.backoff_initial = BACKOFF_INITIAL if backoff_initial is None else backoff_initial
        self.backoff_max = BACKOFF_MAX if backoff_max is None else backoff_max
        self._sleep = sleep
        self.throttle = Throttle(settings.max_requests_per_second)
        http_client = stripe.RequestsClient(timeout=TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            settings.api_key,
            stripe_version=API_VERSION,
            base_addresses={"api": settings.api_base},
            max_network_retries=0,
            http_client=http_client,
        )
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests sent (attempts)
        self.retries = 0
        self.calls = 0  # requests Stripe answered successfully
        self.writes_skipped = 0  # writes a dry run did not send
        self._dry_ids = itertools.count(1)
        self._dry_invoices: dict[str, dict[str, Any]] = {}  # stand-in invoices a dry run "created"
        self._dry_items: dict[str, list[dict[str, Any]]] = {}  # stand-in items per invoice id

    def __repr__(self) -> str:  # never the key
        return f"Gateway({self.settings})"

    # ------------------------------------------------------------------ the request loop
    def _call(self, label: str, fn: Callable[[], Any], on_replay: Callable[[], Any] | None = None) -> Any:
        attempt = 0
        while True:
            self.throttle.acquire()
            with self._lock:
                self.requests += 1
            try:
                result = fn()
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise ConfigError(
                    f"Stripe refused the API key from {self.settings.key_source} ({_describe(exc)})",
                    hint="check the key and, for a restricted key, its permissions",
                ) from None
            except stripe.StripeError as exc:
                status = getattr(exc, "http_status", None)
                should = _header(exc, "stripe-should-retry")
                connection = isinstance(exc, stripe.APIConnectionError)
                retryable = should == "true" or (
                    should != "false" and (connection or status in (409, 429) or (status or 0) >= 500)
                )
                if retryable and attempt < self.settings.max_retries:
                    attempt += 1
                    with self._lock:
                        self.retries += 1
                    self._sleep(self._backoff(attempt, status == 429))
                    continue
                if connection:
                    raise DependencyDown(
                        f"Stripe unreachable at {self.settings.api_base} after {attempt + 1} attempts: {_describe(exc)}"
                    ) from None
                raise StripeFailure(
                    f"{label}: {_describe(exc)}" + (f" (after {attempt + 1} attempts)" if attempt else ""),
                    status=status,
                    code=getattr(exc, "code", None),
                ) from None
            with self._lock:
                self.calls += 1
            if self.on_call is not None:
                self.on_call(label)
            if on_replay is not None and attempt == 0 and _replayed(result):
                return on_replay()  # a first attempt answered from an old request: nothing happened now
            return result.to_dict() if hasattr(result, "to_dict") else result

    def _backoff(self, attempt: int, rate_limited: bool) -> float:
        base = min(self.backoff_initial * (2 ** (attempt - 1)), self.backoff_max)
        if rate_limited:
            base = max(base, self.backoff_initial * 2)
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    def _write(self, label: str, fn: Callable[[], Any], stand_in: dict[str, Any]) -> dict[str, Any]:
        if self.dry_run:
            with self._lock:
                self.writes_skipped += 1
            return stand_in
        return self._call(label, fn)

    def _dry_id(self, prefix: str) -> str:
        return f"{prefix}dryrun{next(self._dry_ids):06d}"

    @staticmethod
    def _options(key: str | None) -> stripe.RequestOptions:
        return {"idempotency_key": key} if key else {}

    # ------------------------------------------------------------------ customers
    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return self._call("retrieve customer", lambda: self._client.v1.customers.retrieve(customer_id))

    def search_customers(self, query: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {"query": query, "limit": 100}
            if page:
                params["page"] = page
            result = self._call("search customers", partial(self._client.v1.customers.search, params=_sdk(params)))
            found.extend(result["data"])
            if not result.get("has_more") or not result.get("next_page"):
                return found
            page = result["next_page"]

    def create_customer(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        stand_in = {"id": self._dry_id("cus_"), "object": "customer", **params}
        return self._write(
            "create customer",
            lambda: self._client.v1.customers.create(params=_sdk(params), options=self._options(key)),
            stand_in,
        )

    def update_customer(self, customer_id: str, params: dict[str, Any], key: str) -> dict[str, Any]:
        """An update replayed from an earlier request with the same key (the customer went back to a
        state it had within Stripe's 24 hours) is sent again under a fresh key: setting the same
        values twice is harmless, not setting them is not."""

        def send(with_key: str, on_replay: Callable[[], Any] | None) -> Any:
            return self._call(
                "update customer",
                lambda: self._client.v1.customers.update(
                    customer_id, params=_sdk(params), options=self._options(with_key)
                ),
                on_replay,
            )

        if self.dry_run:
            return self._write("update customer", lambda: None, {"id": customer_id, "object": "customer", **params})
        return send(key, lambda: send(resend_key(key), None))

    def list_customers(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every customer matching ``params`` (e.g. ``email``), newest first: the look-up where Stripe's
        search is unavailable."""
        return self._listed("list customers", lambda p: self._client.v1.customers.list(params=_sdk(p)), params)

    # ------------------------------------------------------------------ invoices
    def _listed(
        self, label: str, fetch: Callable[[dict[str, Any]], Any], params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Every object of a Stripe list endpoint, following ``starting_after`` from page to page."""
        after: str | None = None
        while True:
            page = {**params, "limit": 100, **({"starting_after": after} if after else {})}
            result = self._call(label, partial(fetch, page))
            yield from result["data"]
            if not result.get("has_more") or not result["data"]:
                return
            after = result["data"][-1]["id"]

    def list_invoices(self, customer_id: str) -> Iterator[dict[str, Any]]:
        """Every invoice of a customer, newest first (paging through)."""
        return self._listed(
            "list invoices", lambda p: self._client.v1.invoices.list(params=_sdk(p)), {"customer": customer_id}
        )

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        if invoice_id in self._dry_invoices:
            invoice = dict(self._dry_invoices[invoice_id])
        else:
            invoice = self._call("retrieve invoice", lambda: self._client.v1.invoices.retrieve(invoice_id))
        added = sum(int(i["amount"]) for i in self._dry_items.get(invoice_id, []))
        if added and invoice.get("status") == StripeStatus.DRAFT:  # what Stripe would show after the skipped writes
            for total in ("subtotal", "total", "amount_due"):
                invoice[total] = int(invoice.get(total) or 0) + added
        return invoice

    def create_invoice(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        stand_in = {
            "id": self._dry_id("in_"),
            "object": "invoice",
            "status": StripeStatus.DRAFT,
            "number": None,
            "hosted_invoice_url": None,
            **params,
            "discounts": [],
            "automatic_tax": {"enabled": False},
            **{total: 0 for total in ("subtotal", "total", "amount_due")},
        }
        if self.dry_run:
            self._dry_invoices[stand_in["id"]] = stand_in
        return self._write(
            "create invoice",
            lambda: self._client.v1.invoices.create(params=_sdk(params), options=self._options(key)),
            stand_in,
        )

    def list_invoice_items(self, invoice_id: str) -> list[dict[str, Any]]:
        found = (
            []
            if invoice_id in self._dry_invoices
            else list(
                self._listed(
                    "list invoice items",
                    lambda p: self._client.v1.invoice_items.list(params=_sdk(p)),
                    {"invoice": invoice_id},
                )
            )
        )
        return found + self._dry_items.get(invoice_id, [])

    def create_invoice_item(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        stand_in = {"id": self._dry_id("ii_"), "object": "invoiceitem", **params}
        if self.dry_run:
            self._dry_items.setdefault(params["invoice"], []).append(stand_in)
        return self._write(
            "create invoice item",
            lambda: self._client.v1.invoice_items.create(params=_sdk(params), options=self._options(key)),
            stand_in,
        )

    def finalize_invoice(self, invoice_id: str, params: dict[str, Any], key: str, stand_in: dict) -> dict[str, Any]:
        return self._write(
            "finalize invoice",
            lambda: self._client.v1.invoices.finalize_invoice(
                invoice_id, params=_sdk(params), options=self._options(key)
            ),
            {**stand_in, "status": StripeStatus.OPEN},
        )

    def delete_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Delete a draft (DELETE carries no idempotency key: Stripe deletes once; a second delete of
        the same draft is a 404, which the caller reads as done)."""
        return self._write(
            "delete invoice",
            lambda: self._client.v1.invoices.delete(invoice_id),
            {"id": invoice_id, "object": "invoice", "deleted": True},
        )

    def void_invoice(self, invoice_id: str, key: str, stand_in: dict) -> dict[str, Any]:
        return self._write(
            "void invoice",
            lambda: self._client.v1.invoices.void_invoice(invoice_id, options=self._options(key)),
            {**stand_in, "status": StripeStatus.VOID},
        )

    # ------------------------------------------------------------------ credit notes (issue 9)
    def list_invoice_lines(self, invoice_id: str) -> list[dict[str, Any]]:
        return list(
            self._listed(
                "list invoice lines", lambda p: self._client.v1.invoices.line_items.list(invoice_id, params=_sdk(p)), {}
            )
        )

    def list_credit_notes(self, **filters: str) -> list[dict[str, Any]]:
        """Every credit note of one Stripe invoice (``invoice=``) or customer (``customer=``)."""
        return list(
            self._listed("list credit notes", lambda p: self._client.v1.credit_notes.list(params=_sdk(p)), filters)
        )

    def create_credit_note(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        total = sum(int(x.get("amount", x.get("unit_amount", 0))) for x in params.get("lines", []))
        settled = sum(params.get(k, 0) for k in ("refund_amount", "credit_amount", "out_of_band_amount"))
        stand_in = {
            "id": self._dry_id("cn_"),
            "object": "credit_note",
            "status": "issued",
            "number": None,
            "total": total,
            "pre_payment_amount": total - settled,
            "post_payment_amount": settled,
            **params,
        }
        return self._write(
            "create credit note",
            lambda: self._client.v1.credit_notes.create(params=_sdk(params), options=self._options(key)),
            stand_in,
        )

    # ------------------------------------------------------------------ events
    def list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("list events", lambda: self._client.v1.events.list(params=_sdk(params)))
