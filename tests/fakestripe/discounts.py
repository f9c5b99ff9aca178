"""Coupons and discounts, applied to one-off invoices as Stripe applies them (a mixin of StripeState).

- A coupon (``POST /v1/coupons``) takes ``percent_off`` or ``amount_off`` with ``currency``, and a
  ``duration``: once, repeating or forever (default once).
- A customer carries at most one discount. The current API can no longer set it (the singular
  ``coupon`` parameter left the Customer endpoints in 2025-03-31.basil); the Dashboard and Checkout
  still can, and ``FakeStripe.give_customer_discount(customer, coupon)`` plays that part.
  ``DELETE /v1/customers/:id/discount`` removes it.
- An invoice created without ``discounts`` inherits the customer's discount (the SDK: "If not
  specified, inherits the discount from the invoice's customer"); ``discounts=""`` means none (an
  empty list sends nothing at all, so it inherits); a list redeems those coupons or reuses those
  discounts. The same parameter on an invoice item gives it item-level discounts.
- Invoice items are discountable unless created with ``discountable=false`` (negative ones default
  to false). Item-level discounts apply first, then the invoice's, each to what is left of the
  discountable lines; each discount's amount is rounded once (to the currency's chargeable step)
  and spread over the lines in proportion, largest remainder first.
- A "once" coupon applied through the customer's discount ends when the first invoice carrying it
  is finalized.

Everything runs under the server lock, like the rest of StripeState.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import currencies
from .ids import missing, new_id
from .validation import ParamError


def _allocate(total: int, weights: list[int]) -> list[int]:
    """``total`` spread over ``weights`` in proportion (largest remainder); sums exactly to total."""
    whole = sum(weights)
    if whole <= 0 or total <= 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


class Discounts:
    """Mixin: ``self.coupons`` and ``self.discount_objects`` live beside the other stored objects."""

    customers: dict[str, dict[str, Any]]
    coupons: dict[str, dict[str, Any]]
    discount_objects: dict[str, dict[str, Any]]
    now: Callable[[], int]  # StripeState's clock and event log
    emit: Callable[..., Any]

    # ------------------------------------------------------------------------------- coupons
    def create_coupon(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        percent, amount = params.get("percent_off"), params.get("amount_off")
        if (percent is None) == (amount is None):
            raise ParamError("You must pass exactly one of percent_off or amount_off.", param="percent_off")
        if percent is not None and not 0 < percent <= 100:
            raise ParamError("Invalid percent_off: must be greater than 0 and at most 100", param="percent_off")
        if amount is not None and (amount <= 0 or not params.get("currency")):
            raise ParamError("amount_off needs a positive amount and a currency.", param="amount_off")
        duration = params.get("duration", "once")
        if duration == "repeating" and not params.get("duration_in_months"):
            raise ParamError("Missing required param: duration_in_months.", param="duration_in_months",
                             code="parameter_missing")
        coupon_id = params.get("id") or new_id("", 8)
        if coupon_id in self.coupons:
            raise ParamError("Coupon already exists.", param="id", code="resource_already_exists")
        coupon = {
            "id": coupon_id,
            "object": "coupon",
            "amount_off": amount,
            "applies_to": None,
            "created": self.now(),
            "currency": params["currency"].lower() if params.get("currency") else None,
            "duration": duration,
            "duration_in_months": params.get("duration_in_months"),
            "livemode": False,
            "max_redemptions": params.get("max_redemptions"),
            "metadata": dict(params.get("metadata") or {}),
            "name": params.get("name"),
            "percent_off": float(percent) if percent is not None else None,
            "redeem_by": params.get("redeem_by"),
            "times_redeemed": 0,
            "valid": True,
            "_percent": Decimal(percent) if percent is not None else None,
        }
        self.coupons[coupon_id] = coupon
        self.emit("coupon.created", coupon, req)
        return 200, coupon

    def retrieve_coupon(self, params: dict[str, Any], req: dict[str, Any], coupon_id: str) -> tuple[int, Any]:
        return 200, self._coupon(coupon_id, "id", 404)

    def _coupon(self, coupon_id: str, param: str = "coupon", status: int = 400) -> dict[str, Any]:
        coupon = self.coupons.get(coupon_id)
        if coupon is None:
            raise missing("coupon", coupon_id, param, status)
        return coupon

    def _discount(self, coupon: dict[str, Any], *, customer: str, invoice: str | None = None,
                  invoice_item: str | None = None) -> dict[str, Any]:
        if not coupon["valid"]:
            raise ParamError(f"Coupon {coupon['id']} is no longer valid.", param="coupon", code="coupon_expired")
        coupon["times_redeemed"] += 1
        if coupon["max_redemptions"] is not None and coupon["times_redeemed"] >= coupon["max_redemptions"]:
            coupon["valid"] = False
        discount = {
            "id": new_id("di_"),
            "object": "discount",
            "checkout_session": None,
            "customer": customer,
            "customer_account": None,
            "end": None,
            "invoice": invoice,
            "invoice_item": invoice_item,
            "promotion_code": None,
            "source": {"type": "coupon", "coupon": coupon["id"]},
            "start": self.now(),
            "subscription": None,
        }
        self.discount_objects[discount["id"]] = discount
        return discount

    # ---------------------------------------------------------------- customer discounts
    def give_customer_discount(self, customer_id: str, coupon_id: str) -> dict[str, Any]:
        """What the Dashboard does: the customer carries ``coupon_id`` from now on."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise missing("customer", customer_id)
        discount = self._discount(self._coupon(coupon_id), customer=customer_id)
        before = customer.get("discount")
        customer["discount"] = discount
        self.emit("customer.discount.created", discount, None)
        self.emit("customer.updated", customer, None, {"discount": before})
        return discount

    def delete_customer_discount(self, params: dict[str, Any], req: dict[str, Any],
                                 customer_id: str) -> tuple[int, Any]:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise missing("customer", customer_id)
        discount = customer.get("discount")
        if not discount:
            raise ParamError(f"No active discount for customer: '{customer_id}'", param="id",
                             code="resource_missing", status=404)
        customer["discount"] = None
        discount = self.discount_objects.get(discount["id"], discount)
        discount["end"] = self.now()
        self.emit("customer.discount.deleted", discount, req)
        return 200, {"id": discount["id"], "object": "discount", "deleted": True}

    # ------------------------------------------------------------- discounts of invoices
    def resolve_discounts(self, value: Any, *, customer: dict[str, Any], invoice: str | None = None,
                          invoice_item: str | None = None, inherit: bool = False,
                          param: str = "discounts") -> list[str]:
        """Discount ids for an invoice's or item's ``discounts`` parameter (None: not given)."""
        if value is None:
            inherited = customer.get("discount")
            if inherit and inherited and self.coupons.get(inherited["source"]["coupon"], {}).get("valid", True):
                return [inherited["id"]]
            return []
        if value == "":
            return []
        ids: list[str] = []
        for index, entry in enumerate(value):
            where = f"{param}[{index}]"
            if len([k for k in ("coupon", "discount", "promotion_code") if entry.get(k)]) != 1:
                raise ParamError(f"Give exactly one of coupon, discount or promotion_code in {where}.", param=where)
            if entry.get("promotion_code"):
                raise missing("promotion_code", entry["promotion_code"], f"{where}[promotion_code]", 400)
            if entry.get("coupon"):
                coupon = self._coupon(entry["coupon"], f"{where}[coupon]")
                discount = self._discount(coupon, customer=customer["id"], invoice=invoice, invoice_item=invoice_item)
            else:
                discount = self.discount_objects.get(entry["discount"])
                if discount is None or discount["customer"] != customer["id"]:
                    raise missing("discount", entry["discount"], f"{where}[discount]", 400)
            if discount["id"] in ids:
                raise ParamError(f"The discount {discount['id']} is given twice.", param=where)
            ids.append(discount["id"])
        return ids

    def _discount_amount(self, discount_id: str, base: int, currency: str) -> int:
        coupon = self.coupons.get(self.discount_objects[discount_id]["source"]["coupon"])
        if coupon is None or base <= 0:
            return 0
        if coupon["_percent"] is not None:
            wanted = Decimal(base) * coupon["_percent"] / 100
        elif coupon["currency"] == currency:
            wanted = Decimal(coupon["amount_off"])
        else:
            return 0  # an amount_off coupon in another currency does not apply
        step = currencies.step(currency)
        rounded = int((wanted / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step
        return min(rounded, base)

    def apply_discounts(self, invoice: dict[str, Any], lines: list[dict[str, Any]],
                        items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fill each line's ``discount_amounts`` and return the invoice's ``total_discount_amounts``:
        item-level discounts first, then the invoice's, each on what the discountable lines have left."""
        remaining = [max(line["amount"], 0) if line["discountable"] else 0 for line in lines]
        totals: dict[str, int] = {}

        def apply(discount_id: str, indices: list[int]) -> None:
            base = sum(remaining[i] for i in indices)
            amount = self._discount_amount(discount_id, base, invoice["currency"])
            for i, share in zip(indices, _allocate(amount, [remaining[i] for i in indices]), strict=True):
                if share:
                    remaining[i] -= share
                    lines[i]["discount_amounts"].append({"amount": share, "discount": discount_id})
            totals[discount_id] = totals.get(discount_id, 0) + amount

        for index, item in enumerate(items):
            for discount_id in item.get("discounts") or []:
                lines[index]["discounts"].append(discount_id)
                apply(discount_id, [index])
        for discount_id in invoice.get("discounts") or []:
            apply(discount_id, list(range(len(lines))))
        return [{"amount": amount, "discount": discount_id} for discount_id, amount in totals.items()]

    def end_once_discounts(self, invoice: dict[str, Any]) -> None:
        """After finalization: a "once" coupon used through the customer's discount is spent."""
        customer = self.customers.get(invoice["customer"])
        inherited = (customer or {}).get("discount")
        if not inherited or inherited["id"] not in (invoice.get("discounts") or []):
            return
        coupon = self.coupons.get(inherited["source"]["coupon"])
        if coupon is not None and coupon["duration"] == "once":
            assert customer is not None
            customer["discount"] = None
            self.discount_objects[inherited["id"]]["end"] = self.now()
            self.emit("customer.discount.deleted", inherited, None)
