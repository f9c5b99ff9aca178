"""Stateful Stripe resources: customers, invoice items, invoices and events, with Stripe's rules.

Everything here runs under the server's single lock; methods take already validated and coerced
parameters (see validation.py) and either return ``(status, body)`` or raise ParamError.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import currencies
from .credit_notes import CreditNotesMixin
from .discounts import Discounts
from .ids import missing as _missing
from .ids import new_id
from .search import matcher
from .validation import ParamError

API_VERSION_FALLBACK = "2026-10-28.endive"

# Currencies Stripe accepts (presentment), lower case.
CURRENCIES = frozenset(
    [
        "usd",
        "aed",
        "afn",
        "all",
        "amd",
        "ang",
        "aoa",
        "ars",
        "aud",
        "awg",
        "azn",
        "bam",
        "bbd",
        "bdt",
        "bgn",
        "bhd",
        "bif",
        "bmd",
        "bnd",
        "bob",
        "brl",
        "bsd",
        "bwp",
        "byn",
        "bzd",
        "cad",
        "cdf",
        "chf",
        "clp",
        "cny",
        "cop",
        "crc",
        "cve",
        "czk",
        "djf",
        "dkk",
        "dop",
        "dzd",
        "egp",
        "etb",
        "eur",
        "fjd",
        "fkp",
        "gbp",
        "gel",
        "gip",
        "gmd",
        "gnf",
        "gtq",
        "gyd",
        "hkd",
        "hnl",
        "htg",
        "huf",
        "idr",
        "ils",
        "inr",
        "isk",
        "jmd",
        "jod",
        "jpy",
        "kes",
        "kgs",
        "khr",
        "kmf",
        "krw",
        "kwd",
        "kyd",
        "kzt",
        "lak",
        "lbp",
        "lkr",
        "lrd",
        "lsl",
        "mad",
        "mdl",
        "mga",
        "mkd",
        "mmk",
        "mnt",
        "mop",
        "mur",
        "mvr",
        "mwk",
        "mxn",
        "myr",
        "mzn",
        "nad",
        "ngn",
        "nio",
        "nok",
        "npr",
        "nzd",
        "omr",
        "pab",
        "pen",
        "pgk",
        "php",
        "pkr",
        "pln",
        "pyg",
        "qar",
        "ron",
        "rsd",
        "rub",
        "rwf",
        "sar",
        "sbd",
        "scr",
        "sek",
        "sgd",
        "shp",
        "sle",
        "sos",
        "srd",
        "std",
        "szl",
        "thb",
        "tjs",
        "tnd",
        "top",
        "try",
        "ttd",
        "twd",
        "tzs",
        "uah",
        "ugx",
        "uyu",
        "uzs",
        "vnd",
        "vuv",
        "wst",
        "xaf",
        "xcd",
        "xof",
        "xpf",
        "yer",
        "zar",
        "zmw",
    ]
)

DAY = 86400
RETRY_INTERVAL = 3 * DAY  # automatic collection: next attempt 3 days after a failed one
# Stripe's minimum charge amounts (minor units) for the currencies simulated; an automatically
# collected invoice below it is not charged: Stripe marks it paid and carries the amount to the
# customer's balance (a debit the next invoice collects).
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50}
MAX_ATTEMPTS = 4
AUTO_FINALIZE_DELAY = 3600  # Stripe finalizes auto_advance drafts about an hour after creation

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class StripeState(Discounts, CreditNotesMixin):
    """All stored objects. ``now`` is the fake clock; ``on_event`` is told about every new event
    and returns the number of webhook endpoints it will be delivered to. Coupons and discounts are
    in the ``Discounts`` mixin (discounts.py)."""

    def __init__(
        self,
        now: Callable[[], int],
        *,
        search_lag_seconds: int = 0,
        on_event: Callable[[dict[str, Any]], int] | None = None,
        api_version: str = API_VERSION_FALLBACK,
    ) -> None:
        self.now = now
        self.search_lag_seconds = search_lag_seconds
        self.on_event = on_event
        self.api_version = api_version
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoiceitems: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.deleted: dict[str, dict[str, Any]] = {}
        self.payment_outcomes: dict[str, str] = {}
        self.coupons: dict[str, dict[str, Any]] = {}
        self.discount_objects: dict[str, dict[str, Any]] = {}
        self.search_available = True  # False: Stripe's search is unavailable (India and some other accounts)
        self._invoice_number = 0
        self._line_ids: dict[str, str] = {}
        self._final_lines: dict[str, list[dict[str, Any]]] = {}  # invoice id -> lines frozen at finalization
        self._init_credit_notes()

    # ------------------------------------------------------------------------------------ helpers
    def emit(
        self, type_: str, obj: dict[str, Any], req: dict[str, Any] | None, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": (req or {}).get("id"), "idempotency_key": (req or {}).get("idempotency_key")},
            "type": type_,
        }
        self.events.append(event)
        if self.on_event is not None:
            event["pending_webhooks"] = self.on_event(event)
        return event

    def _customer(self, customer_id: str, *, param: str = "id", status: int = 404) -> dict[str, Any]:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise _missing("customer", customer_id, param, status)
        return customer

    def _invoice(self, invoice_id: str, *, param: str = "id", status: int = 404) -> dict[str, Any]:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise _missing("invoice", invoice_id, param, status)
        return invoice

    def _invoiceitem(self, item_id: str) -> dict[str, Any]:
        item = self.invoiceitems.get(item_id)
        if item is None:
            raise _missing("invoiceitem", item_id)
        return item

    @staticmethod
    def _currency(value: str, param: str = "currency") -> str:
        currency = value.lower()
        if currency not in CURRENCIES:
            raise ParamError(
                f"Invalid currency: {value}. Stripe currently supports these currencies: "
                + ", ".join(sorted(CURRENCIES)),
                param=param,
            )
        return currency

    @staticmethod
    def _merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
        if update == "":
            return {}
        merged = dict(current)
        for key, value in (update or {}).items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
        if any("[" in k or "]" in k for k in merged):
            raise ParamError("Metadata keys can't contain square brackets ('[' or ']').", param="metadata")
        return merged

    def lookup(self, object_id: str) -> dict[str, Any] | None:
        for table in (
            self.customers,
            self.invoices,
            self.invoiceitems,
            self.coupons,
            self.discount_objects,
            self.credit_notes,
        ):
            if object_id in table:
                return table[object_id]
        return None

    # ---------------------------------------------------------------------------------- listing
    def paginate(
        self,
        items: list[dict[str, Any]],
        params: dict[str, Any],
        url: str,
        keep: Callable[[dict[str, Any]], bool] = lambda _o: True,
        kind: str = "object",
    ) -> dict[str, Any]:
        """``items`` newest first. Cursors are positions in ``items`` (not only the kept ones)."""
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise ParamError("Invalid limit: must be between 1 and 100", param="limit")
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            raise ParamError(
                "You may only specify one of these parameters: ending_before, starting_after.", param="starting_after"
            )
        ids = [o["id"] for o in items]
        if after:
            if after not in ids:
                raise _missing(kind, after, "starting_after", 400)
            rest = [o for o in items[ids.index(after) + 1 :] if keep(o)]
            page, has_more = rest[:limit], len(rest) > limit
        elif before:
            if before not in ids:
                raise _missing(kind, before, "ending_before", 400)
            rest = [o for o in items[: ids.index(before)] if keep(o)]
            page, has_more = rest[-limit:], len(rest) > limit
        else:
            rest = [o for o in items if keep(o)]
            page, has_more = rest[:limit], len(rest) > limit
        return {"object": "list", "data": page, "has_more": has_more, "url": url}

    def search(
        self, items: list[dict[str, Any]], params: dict[str, Any], url: str, fields: set[str], resource: str
    ) -> dict[str, Any]:
        if not self.search_available:  # what Stripe answers accounts without search (e.g. India)
            raise ParamError("The search feature is temporarily unavailable in your region.")
        match = matcher(params["query"], fields, resource)
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise ParamError("Invalid limit: must be between 1 and 100", param="limit")
        horizon = self.now() - self.search_lag_seconds
        found = [o for o in items if (self.search_lag_seconds <= 0 or o["created"] <= horizon) and match(o)]
        offset = 0
        if params.get("page"):
            page_token = params["page"]
            if not page_token.startswith("page_") or not page_token[5:].isdigit():
                raise ParamError(f"Invalid page: {page_token}", param="page")
            offset = int(page_token[5:])
        data = found[offset : offset + limit]
        has_more = offset + limit < len(found)
        return {
            "object": "search_result",
            "data": data,
            "has_more": has_more,
            "next_page": f"page_{offset + limit}" if has_more else None,
            "url": url,
        }

    @staticmethod
    def _created_filter(created: Any) -> Callable[[dict[str, Any]], bool]:
        if created is None:
            return lambda _o: True
        if isinstance(created, int):
            return lambda o: o["created"] == created
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        return lambda o: all(ops[k](o["created"], v) for k, v in created.items())

    # -------------------------------------------------------------------------------- customers
    _CUSTOMER_FIELDS = (
        "address",
        "description",
        "email",
        "name",
        "phone",
        "shipping",
        "preferred_locales",
        "invoice_prefix",
        "tax_exempt",
        "balance",
        "next_invoice_sequence",
        "business_name",
        "individual_name",
    )

    def create_customer(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        self._check_email(params.get("email"))
        customer: dict[str, Any] = {
            "id": new_id("cus_", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "business_name": None,
            "created": self.now(),
            "currency": None,
            "customer_account": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": None,
            "individual_name": None,
            "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {},
            "name": None,
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self._apply_customer(customer, params)
        self.customers[customer["id"]] = customer
        self.emit("customer.created", customer, req)
        return 200, customer

    def _check_email(self, email: Any) -> None:
        if email and not _EMAIL_RE.match(email):
            raise ParamError(f"Invalid email address: {email}", param="email", code="email_invalid")

    def _apply_customer(self, customer: dict[str, Any], params: dict[str, Any]) -> None:
        for field in self._CUSTOMER_FIELDS:
            if field in params:
                value = params[field]
                customer[field] = None if value == "" and field not in ("tax_exempt",) else value
        if params.get("tax_exempt") == "":
            customer["tax_exempt"] = "none"
        if "metadata" in params:
            customer["metadata"] = self._merge_metadata(customer["metadata"], params["metadata"])
        if isinstance(params.get("invoice_settings"), dict):
            settings = customer["invoice_settings"]
            for key, value in params["invoice_settings"].items():
                settings[key] = None if value == "" else value

    def retrieve_customer(self, params: dict[str, Any], req: dict[str, Any], customer_id: str) -> tuple[int, Any]:
        if customer_id in self.deleted and self.deleted[customer_id]["object"] == "customer":
            return 200, self.deleted[customer_id]
        return 200, self._customer(customer_id)

    def update_customer(self, params: dict[str, Any], req: dict[str, Any], customer_id: str) -> tuple[int, Any]:
        customer = self._customer(customer_id)
        self._check_email(params.get("email"))
        before = copy.deepcopy(customer)
        self._apply_customer(customer, params)
        previous = {k: before[k] for k in customer if before.get(k) != customer[k]}
        if previous:
            self.emit("customer.updated", customer, req, previous)
        return 200, customer

    def delete_customer(self, params: dict[str, Any], req: dict[str, Any], customer_id: str) -> tuple[int, Any]:
        customer = self._customer(customer_id)
        del self.customers[customer_id]
        for invoice in [i for i in self.invoices.values() if i["customer"] == customer_id and i["status"] == "draft"]:
            self._drop_invoice(invoice, req)
        stub = {"id": customer_id, "object": "customer", "deleted": True}
        self.deleted[customer_id] = stub
        self.emit("customer.deleted", customer, req)
        return 200, stub

    def list_customers(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        created = self._created_filter(params.get("created"))
        email = params.get("email")
        items = list(reversed(self.customers.values()))
        return 200, self.paginate(
            items,
            params,
            "/v1/customers",
            kind="customer",
            keep=lambda c: created(c) and (email is None or c["email"] == email),
        )

    def search_customers(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        items = list(reversed(self.customers.values()))
        return 200, self.search(
            items, params, "/v1/customers/search", {"created", "email", "metadata", "name", "phone"}, "customers"
        )

    # ----------------------------------------------------------------------------- invoice items
    def _item_amount(self, params: dict[str, Any], currency: str | None) -> tuple[int, int]:
        """(amount, quantity) from amount | price_data | unit_amount_decimal x quantity."""
        quantity = params.get("quantity")
        if "quantity_decimal" in params and quantity is not None:
            raise ParamError(
                "You may only specify one of these parameters: quantity, quantity_decimal.", param="quantity"
            )
        qty = Decimal(quantity) if quantity is not None else params.get("quantity_decimal", Decimal(1))
        if qty < 0:
            raise ParamError("Invalid quantity: must be greater than or equal to 0", param="quantity")
        if "pricing" in params:
            price = (params["pricing"] or {}).get("price", "")
            raise _missing("price", price, "pricing[price]", 400)
        sources = [k for k in ("amount", "price_data", "unit_amount_decimal") if k in params]
        if len(sources) > 1:
            raise ParamError(f"You may only specify one of these parameters: {', '.join(sources)}.", param=sources[1])
        if not sources:
            raise ParamError(
                "Missing required param: amount. Specify one of amount, price_data, pricing or unit_amount_decimal.",
                param="amount",
                code="parameter_missing",
            )
        if "amount" in params:
            if quantity not in (None, 1) or "quantity_decimal" in params:
                raise ParamError(
                    "You can't specify quantity together with amount; use unit_amount_decimal or price_data instead.",
                    param="quantity",
                )
            return params["amount"], 1
        if "price_data" in params:
            price_data = params["price_data"]
            price_currency = self._currency(price_data["currency"], "price_data[currency]")
            if currency and price_currency != currency:
                raise ParamError(
                    f"The price_data currency ({price_currency}) must match the invoice item currency ({currency}).",
                    param="price_data[currency]",
                )
            if "unit_amount" in price_data and "unit_amount_decimal" in price_data:
                raise ParamError(
                    "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                    param="price_data[unit_amount]",
                )
            unit = Decimal(price_data.get("unit_amount", price_data.get("unit_amount_decimal", 0)))
        else:
            unit = params["unit_amount_decimal"]
        amount = int((unit * qty).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return amount, int(qty) if qty == qty.to_integral_value() else 1

    def create_invoiceitem(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        invoice = None
        if params.get("invoice"):
            invoice = self._invoice(params["invoice"], param="invoice", status=400)
        customer_id = params.get("customer") or (invoice["customer"] if invoice else None)
        if not customer_id:
            raise ParamError("Missing required param: customer.", param="customer", code="parameter_missing")
        customer = self._customer(customer_id, param="customer", status=400)
        if invoice is not None:
            if invoice["customer"] != customer_id:
                raise ParamError(
                    f"The invoice {invoice['id']} belongs to customer {invoice['customer']}, not {customer_id}.",
                    param="invoice",
                )
            if invoice["status"] != "draft":
                raise ParamError(
                    f"You can only add invoice items to draft invoices; invoice {invoice['id']} "
                    f"is {invoice['status']}.",
                    param="invoice",
                    code="invoice_not_editable",
                )
        currency = params.get("currency") or (params.get("price_data") or {}).get("currency")
        if currency:
            currency = self._currency(currency)
        elif invoice is not None:
            currency = invoice["currency"]
        elif customer["currency"]:
            currency = customer["currency"]
        else:
            raise ParamError("Missing required param: currency.", param="currency", code="parameter_missing")
        if invoice is not None and currency != invoice["currency"]:
            raise ParamError(
                f"The currency of the invoice item ({currency}) must match the currency of the "
                f"invoice ({invoice['currency']}).",
                param="currency",
            )
        amount, quantity = self._item_amount(params, currency)
        currencies.check_amount(amount, currency)
        period = params.get("period")
        if period and period["end"] < period["start"]:
            raise ParamError("The period end must be greater than or equal to the period start.", param="period[end]")
        now = self.now()
        item: dict[str, Any] = {
            "id": new_id("ii_"),
            "object": "invoiceitem",
            "amount": amount,
            "currency": currency,
            "customer": customer_id,
            "customer_account": None,
            "date": now,
            "description": params.get("description"),
            "discountable": params.get("discountable", amount >= 0),
            "discounts": [],
            "invoice": invoice["id"] if invoice else None,
            "livemode": False,
            "metadata": self._merge_metadata({}, params.get("metadata")),
            "net_amount": amount,
            "parent": None,
            "period": dict(period) if period else {"start": now, "end": now},
            "pricing": None,
            "proration": False,
            "quantity": quantity,
            "tax_rates": params.get("tax_rates", []),
            "test_clock": None,
        }
        item["discounts"] = self.resolve_discounts(params.get("discounts"), customer=customer, invoice_item=item["id"])
        self.invoiceitems[item["id"]] = item
        if customer["currency"] is None:
            customer["currency"] = currency
        self.emit("invoiceitem.created", item, req)
        if invoice is not None:
            self._recompute(invoice)
        return 200, item

    def retrieve_invoiceitem(self, params: dict[str, Any], req: dict[str, Any], item_id: str) -> tuple[int, Any]:
        if item_id in self.deleted and self.deleted[item_id]["object"] == "invoiceitem":
            return 200, self.deleted[item_id]
        return 200, self._invoiceitem(item_id)

    def _editable_item(self, item: dict[str, Any], verb: str) -> dict[str, Any] | None:
        invoice = self.invoices.get(item["invoice"]) if item["invoice"] else None
        if invoice is not None and invoice["status"] != "draft":
            raise ParamError(
                f"You can't {verb} an invoice item attached to invoice {invoice['id']}, which "
                f"is {invoice['status']} (only draft invoices can change).",
                param="id",
                code="invoice_not_editable",
            )
        return invoice

    def update_invoiceitem(self, params: dict[str, Any], req: dict[str, Any], item_id: str) -> tuple[int, Any]:
        item = self._invoiceitem(item_id)
        invoice = self._editable_item(item, "update")
        before = copy.deepcopy(item)
        if any(
            k in params
            for k in ("amount", "price_data", "unit_amount_decimal", "quantity", "quantity_decimal", "pricing")
        ):
            merged = dict(params)
            if not any(k in params for k in ("amount", "price_data", "unit_amount_decimal", "pricing")):
                merged["unit_amount_decimal"] = Decimal(item["amount"]) / max(item["quantity"], 1)
            item["amount"], item["quantity"] = self._item_amount(merged, item["currency"])
            currencies.check_amount(item["amount"], item["currency"])
            item["net_amount"] = item["amount"]
        for field in ("description", "discountable", "tax_rates"):
            if field in params:
                item[field] = None if params[field] == "" else params[field]
        if "period" in params:
            item["period"] = dict(params["period"])
        if "discounts" in params:
            item["discounts"] = self.resolve_discounts(
                params["discounts"], customer=self.customers[item["customer"]], invoice_item=item["id"]
            )
        if "metadata" in params:
            item["metadata"] = self._merge_metadata(item["metadata"], params["metadata"])
        previous = {k: before[k] for k in item if before.get(k) != item[k]}
        if previous:
            self.emit("invoiceitem.updated", item, req, previous)
        if invoice is not None:
            self._recompute(invoice)
        return 200, item

    def delete_invoiceitem(self, params: dict[str, Any], req: dict[str, Any], item_id: str) -> tuple[int, Any]:
        item = self._invoiceitem(item_id)
        invoice = self._editable_item(item, "delete")
        del self.invoiceitems[item_id]
        stub = {"id": item_id, "object": "invoiceitem", "deleted": True}
        self.deleted[item_id] = stub
        self.emit("invoiceitem.deleted", item, req)
        if invoice is not None:
            self._recompute(invoice)
        return 200, stub

    def list_invoiceitems(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        created = self._created_filter(params.get("created"))

        def keep(item: dict[str, Any]) -> bool:
            return (
                created(item)
                and ("customer" not in params or item["customer"] == params["customer"])
                and ("invoice" not in params or item["invoice"] == params["invoice"])
                and ("pending" not in params or (item["invoice"] is None) == params["pending"])
            )

        items = list(reversed(self.invoiceitems.values()))
        return 200, self.paginate(items, params, "/v1/invoiceitems", keep, kind="invoiceitem")

    # ---------------------------------------------------------------------------------- invoices
    def _line(self, item: dict[str, Any]) -> dict[str, Any]:
        line_id = self._line_ids.setdefault(item["id"], new_id("il_"))
        return {
            "id": line_id,
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "discount_amounts": [],
            "discountable": item["discountable"],
            "discounts": [],
            "invoice": item["invoice"],
            "livemode": False,
            "metadata": dict(item["metadata"]),
            "parent": {
                "type": "invoice_item_details",
                "subscription_item_details": None,
                "invoice_item_details": {
                    "invoice_item": item["id"],
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
            },
            "period": dict(item["period"]),
            "pretax_credit_amounts": [],
            "pricing": None,
            "quantity": item["quantity"],
            "subtotal": item["amount"],
            "taxes": [],
        }

    def _priced_lines(self, invoice: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(lines with their discount amounts, the invoice's total_discount_amounts)."""
        items = [i for i in self.invoiceitems.values() if i["invoice"] == invoice["id"]]
        lines = [self._line(i) for i in items]
        return lines, self.apply_discounts(invoice, lines, items)

    def invoice_lines(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        return self._priced_lines(invoice)[0]

    def _recompute(self, invoice: dict[str, Any]) -> None:
        """Totals and embedded lines of a draft invoice, from its invoice items and discounts (no tax:
        FakeStripe computes none, even with automatic_tax enabled)."""
        if invoice["status"] != "draft":
            return
        lines, discounts = self._priced_lines(invoice)
        subtotal = sum(line["amount"] for line in lines)
        total = subtotal - sum(d["amount"] for d in discounts)
        invoice.update(
            {
                "subtotal": subtotal,
                "subtotal_excluding_tax": subtotal,
                "total": total,
                "total_excluding_tax": total,
                "total_discount_amounts": discounts,
                "amount_due": max(total, 0),
                "amount_remaining": max(total, 0) - invoice["amount_paid"],
                "lines": {
                    "object": "list",
                    "data": lines[:10],
                    "has_more": len(lines) > 10,
                    "total_count": len(lines),
                    "url": f"/v1/invoices/{invoice['id']}/lines",
                },
            }
        )

    def create_invoice(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        if not params.get("customer"):
            raise ParamError("Missing required param: customer.", param="customer", code="parameter_missing")
        customer = self._customer(params["customer"], param="customer", status=400)
        method = params.get("collection_method", "charge_automatically")
        self._check_collection(method, params.get("days_until_due"), params.get("due_date"))
        currency = self._currency(params["currency"]) if params.get("currency") else (customer["currency"] or "usd")
        now = self.now()
        auto_advance = params.get("auto_advance", False)
        invoice: dict[str, Any] = {
            "id": new_id("in_"),
            "object": "invoice",
            "account_country": "US",
            "account_name": "FakeStripe",
            "account_tax_ids": None,
            "amount_due": 0,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_paid_off_stripe": 0,
            "amount_remaining": 0,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": auto_advance,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": bool((params.get("automatic_tax") or {}).get("enabled", False)),
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": now + AUTO_FINALIZE_DELAY if auto_advance else None,
            "billing_reason": "manual",
            "collection_method": method,
            "created": now,
            "currency": currency,
            "custom_fields": None,
            "customer": customer["id"],
            "customer_account": None,
            "customer_address": customer["address"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "customer_phone": customer["phone"],
            "customer_shipping": customer["shipping"],
            "customer_tax_exempt": customer["tax_exempt"],
            "customer_tax_ids": [],
            "default_payment_method": params.get("default_payment_method"),
            "default_source": params.get("default_source"),
            "default_tax_rates": [],
            "description": params.get("description"),
            "discounts": [],
            "due_date": params.get("due_date"),
            "days_until_due": params.get("days_until_due"),
            "effective_at": None,
            "ending_balance": None,
            "footer": params.get("footer"),
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": {},
            "livemode": False,
            "metadata": self._merge_metadata({}, params.get("metadata")),
            "next_payment_attempt": None,
            "number": params.get("number"),
            "on_behalf_of": None,
            "parent": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
            "period_end": now,
            "period_start": now,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": params.get("statement_descriptor"),
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": 0,
            "subtotal_excluding_tax": 0,
            "test_clock": None,
            "threshold_reason": None,
            "total": 0,
            "total_discount_amounts": [],
            "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": None,
        }
        invoice["discounts"] = self.resolve_discounts(
            params.get("discounts"), customer=customer, invoice=invoice["id"], inherit=True
        )
        self.invoices[invoice["id"]] = invoice
        if params.get("pending_invoice_items_behavior") == "include":
            for item in self.invoiceitems.values():
                if item["customer"] == customer["id"] and item["invoice"] is None and item["currency"] == currency:
                    item["invoice"] = invoice["id"]
        if customer["currency"] is None:
            customer["currency"] = currency
        self._recompute(invoice)
        self.emit("invoice.created", invoice, req)
        return 200, invoice

    @staticmethod
    def _check_collection(method: str, days_until_due: int | None, due_date: int | None) -> None:
        if method == "send_invoice" and days_until_due is None and due_date is None:
            raise ParamError(
                "Missing required param: days_until_due. Invoices with collection_method "
                "send_invoice need days_until_due or due_date.",
                param="days_until_due",
                code="parameter_missing",
            )
        if method == "charge_automatically" and (days_until_due is not None or due_date is not None):
            param = "days_until_due" if days_until_due is not None else "due_date"
            raise ParamError(f"You can only set {param} when collection_method is send_invoice.", param=param)
        if days_until_due is not None and days_until_due < 0:
            raise ParamError("Invalid days_until_due: must be greater than or equal to 0", param="days_until_due")

    def retrieve_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        if invoice_id in self.deleted and self.deleted[invoice_id]["object"] == "invoice":
            return 200, self.deleted[invoice_id]
        return 200, self._invoice(invoice_id)

    _FINALIZED_EDITABLE = frozenset(
        {
            "metadata",
            "description",
            "footer",
            "auto_advance",
            "expand",
            "default_payment_method",
            "default_source",
            "custom_fields",
            "rendering",
            "payment_settings",
            "statement_descriptor",
        }
    )

    def update_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] != "draft":
            frozen = sorted(set(params) - self._FINALIZED_EDITABLE)
            if frozen:
                raise ParamError(
                    f"Finalized invoices can't be updated in this way: {', '.join(frozen)} can only "
                    "change while the invoice is a draft.",
                    param=frozen[0],
                    code="invoice_not_editable",
                )
            if invoice["status"] in ("paid", "void", "uncollectible") and "auto_advance" in params:
                raise ParamError(
                    f"You can't change auto_advance on a {invoice['status']} invoice.",
                    param="auto_advance",
                    code="invoice_not_editable",
                )
        before = copy.deepcopy(invoice)
        method = params.get("collection_method", invoice["collection_method"])
        days = params.get("days_until_due", invoice["days_until_due"])
        due = params.get("due_date", invoice["due_date"])
        if "collection_method" in params and method == "charge_automatically":
            days = params.get("days_until_due")
            due = params.get("due_date")
        if invoice["status"] == "draft":
            self._check_collection(method, days, due)
            invoice["collection_method"], invoice["days_until_due"], invoice["due_date"] = method, days, due
        for field in (
            "description",
            "footer",
            "statement_descriptor",
            "default_payment_method",
            "number",
            "default_source",
        ):
            if field in params:
                invoice[field] = None if params[field] == "" else params[field]
        if "auto_advance" in params:
            invoice["auto_advance"] = params["auto_advance"]
            if invoice["status"] == "draft":
                invoice["automatically_finalizes_at"] = (
                    invoice["created"] + AUTO_FINALIZE_DELAY if params["auto_advance"] else None
                )
        if "metadata" in params:
            invoice["metadata"] = self._merge_metadata(invoice["metadata"], params["metadata"])
        if "discounts" in params:
            invoice["discounts"] = self.resolve_discounts(
                params["discounts"], customer=self.customers[invoice["customer"]], invoice=invoice["id"]
            )
        if "automatic_tax" in params:
            invoice["automatic_tax"]["enabled"] = bool(params["automatic_tax"].get("enabled"))
        self._recompute(invoice)
        previous = {k: before[k] for k in invoice if before.get(k) != invoice[k]}
        if previous:
            self.emit("invoice.updated", invoice, req, previous)
        return 200, invoice

    def _drop_invoice(self, invoice: dict[str, Any], req: dict[str, Any] | None) -> dict[str, Any]:
        for item_id in [i["id"] for i in self.invoiceitems.values() if i["invoice"] == invoice["id"]]:
            self.deleted[item_id] = {"id": item_id, "object": "invoiceitem", "deleted": True}
            del self.invoiceitems[item_id]
        del self.invoices[invoice["id"]]
        stub = {"id": invoice["id"], "object": "invoice", "deleted": True}
        self.deleted[invoice["id"]] = stub
        self.emit("invoice.deleted", invoice, req)
        return stub

    def delete_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] != "draft":
            raise ParamError(
                f"You can only delete draft invoices; invoice {invoice_id} is {invoice['status']}. Void it instead.",
                param="id",
                code="invoice_not_editable",
            )
        return 200, self._drop_invoice(invoice, req)

    def list_invoices(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        created = self._created_filter(params.get("created"))
        due = self._created_filter(params.get("due_date"))

        def keep(invoice: dict[str, Any]) -> bool:
            return (
                created(invoice)
                and (
                    "due_date" not in params
                    or (invoice["due_date"] is not None and due({"created": invoice["due_date"]}))
                )
                and all(invoice.get(k) == params[k] for k in ("customer", "status", "collection_method") if k in params)
                and "subscription" not in params
            )

        items = list(reversed(self.invoices.values()))
        return 200, self.paginate(items, params, "/v1/invoices", keep, kind="invoice")

    def search_invoices(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        items = list(reversed(self.invoices.values()))
        return 200, self.search(
            items,
            params,
            "/v1/invoices/search",
            {
                "created",
                "currency",
                "customer",
                "metadata",
                "number",
                "receipt_number",
                "status",
                "subscription",
                "total",
                "last_finalization_error_code",
            },
            "invoices",
        )

    def list_invoice_lines(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        lines = self._final_lines.get(invoice_id) or self.invoice_lines(invoice)
        # lines are listed in invoice order (oldest first), unlike top-level lists
        params = dict(params)
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise ParamError("Invalid limit: must be between 1 and 100", param="limit")
        ids = [line["id"] for line in lines]
        start, end = 0, len(lines)
        if params.get("starting_after"):
            if params["starting_after"] not in ids:
                raise _missing("line_item", params["starting_after"], "starting_after", 400)
            start = ids.index(params["starting_after"]) + 1
            page = lines[start : start + limit]
            has_more = start + limit < end
        elif params.get("ending_before"):
            if params["ending_before"] not in ids:
                raise _missing("line_item", params["ending_before"], "ending_before", 400)
            end = ids.index(params["ending_before"])
            page = lines[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            page, has_more = lines[:limit], len(lines) > limit
        return 200, {"object": "list", "data": page, "has_more": has_more, "url": f"/v1/invoices/{invoice_id}/lines"}

    # ------------------------------------------------------------------------ invoice lifecycle
    def _finalize(self, invoice: dict[str, Any], req: dict[str, Any] | None) -> None:
        self._recompute(invoice)
        currencies.check_amount(invoice["total"], invoice["currency"], "id")
        now = self.now()
        customer = self.customers.get(invoice["customer"])
        self._final_lines[invoice["id"]] = self.invoice_lines(invoice)
        starting = customer["balance"] if customer else 0
        net = invoice["total"] + starting
        if customer is not None and (starting or invoice["total"] < 0):
            customer["balance"] = min(net, 0)
        self._invoice_number += 1
        invoice.update(
            {
                "status": "open",
                "number": invoice["number"] or f"FAKE-{self._invoice_number:04d}",
                "starting_balance": starting,
                "ending_balance": min(net, 0) if customer else 0,
                "amount_due": max(net, 0),
                "amount_remaining": max(net, 0) - invoice["amount_paid"],
                "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_fakestripe/test_{invoice['id']}",
                "invoice_pdf": f"https://pay.stripe.com/invoice/acct_fakestripe/test_{invoice['id']}/pdf",
                "effective_at": now,
                "automatically_finalizes_at": None,
                "webhooks_delivered_at": now,
                "customer_email": customer["email"] if customer else invoice["customer_email"],
                "customer_name": customer["name"] if customer else invoice["customer_name"],
            }
        )
        invoice["status_transitions"]["finalized_at"] = now
        self.end_once_discounts(invoice)
        if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
            invoice["due_date"] = now + DAY * (invoice["days_until_due"] or 0)
        self.emit("invoice.finalized", invoice, req)
        if invoice["amount_due"] == 0:
            self._mark_paid(invoice, req)
        elif (
            invoice["collection_method"] == "charge_automatically"
            and customer is not None
            and 0 < invoice["amount_due"] < MINIMUM_CHARGE.get(invoice["currency"], 0)
        ):
            carried = invoice["amount_due"]
            customer["balance"] += carried
            invoice["ending_balance"] = customer["balance"]
            self._mark_paid(invoice, req)
            invoice["amount_paid"] = 0
        elif invoice["collection_method"] == "charge_automatically" and invoice["auto_advance"]:
            self._attempt_payment(invoice, req)

    def _mark_paid(self, invoice: dict[str, Any], req: dict[str, Any] | None, *, out_of_band: bool = False) -> None:
        now = self.now()
        invoice.update(
            {
                "status": "paid",
                "amount_paid": invoice["amount_due"],
                "amount_remaining": 0,
                "next_payment_attempt": None,
                "auto_advance": False,
            }
        )
        if out_of_band:
            invoice["amount_paid_off_stripe"] = invoice["amount_due"]
        invoice["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", invoice, req)
        self.emit("invoice.payment_succeeded", invoice, req)

    def pay_part(self, invoice_id: str, amount: int) -> dict[str, Any]:
        """A payment through Stripe of part of what an open invoice still asks (Stripe's partial
        payments): ``amount_paid`` goes up, ``amount_remaining`` down; paying all of it pays it."""
        invoice = self._invoice(invoice_id)
        if invoice["status"] != "open":
            raise ValueError(f"only an open invoice can be paid in part; {invoice_id} is {invoice['status']}")
        if not 0 < amount <= invoice["amount_remaining"]:
            raise ValueError(f"{amount} is not between 1 and what is due ({invoice['amount_remaining']})")
        currencies.check_amount(amount, invoice["currency"])
        if amount == invoice["amount_remaining"]:
            self._mark_paid(invoice, None)  # amount_paid becomes amount_due
            return invoice
        invoice["amount_paid"] += amount
        invoice["amount_remaining"] -= amount
        self.emit("invoice.updated", invoice, None)
        return invoice

    def payment_outcome(self, customer_id: str) -> str:
        customer = self.customers.get(customer_id) or {}
        keys = [customer_id, customer.get("email")]
        keys += [v for k, v in (customer.get("metadata") or {}).items() if "tenant" in k.lower()]
        # The most recently set rule that names this customer wins (dict order is set order).
        matching = [outcome for key, outcome in self.payment_outcomes.items() if key in keys]
        return matching[-1] if matching else self.payment_outcomes.get("*", "succeed")

    def _attempt_payment(self, invoice: dict[str, Any], req: dict[str, Any] | None) -> bool:
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if self.payment_outcome(invoice["customer"]) == "succeed":
            self._mark_paid(invoice, req)
            return True
        invoice["next_payment_attempt"] = (
            self.now() + RETRY_INTERVAL if invoice["attempt_count"] < MAX_ATTEMPTS else None
        )
        self.emit("invoice.payment_failed", invoice, req)
        return False

    def finalize_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] != "draft":
            raise ParamError(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                param="id",
                code="invoice_not_editable",
            )
        if "auto_advance" in params:
            invoice["auto_advance"] = params["auto_advance"]
        self._finalize(invoice, req)
        return 200, invoice

    def pay_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] == "paid":
            raise ParamError("Invoice is already paid", param="id", code="invoice_already_paid")
        if invoice["status"] in ("void",):
            raise ParamError("This invoice has been voided and can no longer be paid.", param="id")
        if invoice["status"] == "draft":
            auto_advance = invoice["auto_advance"]
            invoice["auto_advance"] = False  # the explicit attempt below replaces the automatic one
            self._finalize(invoice, req)
            invoice["auto_advance"] = auto_advance if invoice["status"] != "paid" else False
            if invoice["status"] == "paid":
                return 200, invoice
        if params.get("paid_out_of_band"):
            self._mark_paid(invoice, req, out_of_band=True)
            return 200, invoice
        if not self._attempt_payment(invoice, req):
            raise ParamError(
                "Your card was declined.",
                type="card_error",
                code="card_declined",
                status=402,
                decline_code="generic_decline",
                charge=new_id("ch_"),
                doc_url="https://stripe.com/docs/error-codes/card-declined",
            )
        return 200, invoice

    def void_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] not in ("open", "uncollectible"):
            hint = " Delete it instead." if invoice["status"] == "draft" else ""
            raise ParamError(
                f"You can only void open or uncollectible invoices; invoice {invoice_id} is {invoice['status']}.{hint}",
                param="id",
            )
        invoice.update({"status": "void", "next_payment_attempt": None, "auto_advance": False})
        invoice["status_transitions"]["voided_at"] = self.now()
        self.emit("invoice.voided", invoice, req)
        return 200, invoice

    def mark_uncollectible(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["status"] != "open":
            raise ParamError(
                f"You can only mark open invoices as uncollectible; invoice {invoice_id} is {invoice['status']}.",
                param="id",
            )
        invoice.update({"status": "uncollectible", "next_payment_attempt": None})
        invoice["status_transitions"]["marked_uncollectible_at"] = self.now()
        self.emit("invoice.marked_uncollectible", invoice, req)
        return 200, invoice

    def send_invoice(self, params: dict[str, Any], req: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self._invoice(invoice_id)
        if invoice["collection_method"] != "send_invoice":
            raise ParamError(
                "You can only manually send an invoice if its collection method is 'send_invoice'.", param="id"
            )
        customer = self.customers.get(invoice["customer"]) or {}
        if not customer.get("email"):
            raise ParamError(
                f"Customer {invoice['customer']} has no email address, so the invoice can't be sent.",
                param="customer",
                code="customer_email_missing",
            )
        if invoice["status"] == "draft":
            self._finalize(invoice, req)
        if invoice["status"] in ("void",):
            raise ParamError("You can't send a voided invoice.", param="id")
        self.emit("invoice.sent", invoice, req)
        return 200, invoice

    # ----------------------------------------------------------------------- automatic collection
    def run_automation(self) -> None:
        """What Stripe does in the background as time passes: finalize auto_advance drafts about an
        hour after creation, and retry failed automatic payments when next_payment_attempt is due."""
        now = self.now()
        for invoice in list(self.invoices.values()):
            if (
                invoice["status"] == "draft"
                and invoice["auto_advance"]
                and invoice["automatically_finalizes_at"] is not None
                and invoice["automatically_finalizes_at"] <= now
            ):
                self._finalize(invoice, None)
                if invoice["collection_method"] == "send_invoice" and invoice["status"] == "open":
                    self.emit("invoice.sent", invoice, None)
            elif (
                invoice["status"] == "open"
                and invoice["auto_advance"]
                and invoice["collection_method"] == "charge_automatically"
                and invoice["next_payment_attempt"] is not None
                and invoice["next_payment_attempt"] <= now
            ):
                self._attempt_payment(invoice, None)

    # ------------------------------------------------------------------------------------ events
    def list_events(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        created = self._created_filter(params.get("created"))
        types = params.get("types")
        if types is not None and "type" in params:
            raise ParamError("You may only specify one of these parameters: type, types.", param="types")
        if types is not None and len(types) > 20:
            raise ParamError("Invalid types: at most 20 event types can be given.", param="types")
        pattern = None
        if "type" in params:
            pattern = re.compile("^" + re.escape(params["type"]).replace(r"\*", ".*") + "$")

        def keep(event: dict[str, Any]) -> bool:
            return (
                created(event)
                and (types is None or event["type"] in types)
                and (pattern is None or bool(pattern.match(event["type"])))
            )

        return 200, self.paginate(list(reversed(self.events)), params, "/v1/events", keep, kind="event")

    def retrieve_event(self, params: dict[str, Any], req: dict[str, Any], event_id: str) -> tuple[int, Any]:
        for event in self.events:
            if event["id"] == event_id:
                return 200, event
        raise _missing("event", event_id)


def public(obj: Any) -> Any:
    """A JSON-ready deep copy without the fake's private keys (those starting with '_')."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    return obj


def expand(body: Any, paths: Iterable[str], lookup: Callable[[str], dict[str, Any] | None]) -> Any:
    """Stripe's ``expand[]``: replace ids at the dotted paths by the objects (``data.`` for lists)."""
    for path in paths:
        body = _expand(body, path.split("."), lookup)
    return body


def _expand(node: Any, parts: list[str], lookup: Callable[[str], dict[str, Any] | None]) -> Any:
    if isinstance(node, list):
        return [_expand(n, parts, lookup) for n in node]
    if not isinstance(node, dict) or parts[0] not in node:
        return node
    head, rest = parts[0], parts[1:]
    value = node[head]
    if rest:
        node[head] = _expand(value, rest, lookup)
    elif isinstance(value, str):
        found = lookup(value)
        if found is not None:
            node[head] = public(found)
    return node
