"""Credit notes, as Stripe keeps them: a mixin of ``StripeState`` (kept apart from the invoices code).

Stripe's rules enforced here: a credit note is issued on a finalized invoice (open, paid or
uncollectible; not a draft, not a void one); it is made of ``lines`` (an invoice line item credited
by amount or quantity, or a custom line) or an ``amount``; its total never exceeds what is left to
credit on the invoice, nor a line's credit the line. It first reduces what is still due on the
invoice (``pre_payment_amount``; an open invoice credited in full is paid); the rest
(``post_payment_amount``) must be settled exactly by ``refund_amount`` + ``credit_amount`` (the
customer's balance) + ``out_of_band_amount``, and a refund only up to what was paid through Stripe.
Voiding a credit note gives the invoice its amounts back. Every amount (each line, ``amount``,
each settling amount) follows the currency's rule for charges and refunds (``currencies.py``:
KWD in thousandths ending in 0, ISK and UGX divisible by 100). Events: ``credit_note.created``,
``credit_note.voided``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import currencies
from .validation import ParamError

SETTLING = ("refund_amount", "credit_amount", "out_of_band_amount")


class CreditNotesMixin:
    """Needs from ``StripeState``: ``now``, ``emit``, ``_invoice``, ``paginate``, ``_created_filter``,
    ``_merge_metadata``, ``_final_lines``, ``invoice_lines``, ``customers``."""

    credit_notes: dict[str, dict[str, Any]]

    def _init_credit_notes(self) -> None:
        self.credit_notes = {}
        self._credit_note_seq: dict[str, int] = {}

    def _credit_note(self, credit_note_id: str) -> dict[str, Any]:
        note = self.credit_notes.get(credit_note_id)
        if note is None:
            raise ParamError(
                f"No such credit note: '{credit_note_id}'", param="id", code="resource_missing", status=404
            )
        return note

    def _live_notes(self, invoice_id: str) -> list[dict[str, Any]]:
        return [n for n in self.credit_notes.values() if n["invoice"] == invoice_id and n["status"] != "void"]

    def _credited_on_line(self, invoice_id: str, line_id: str) -> int:
        return sum(
            x["amount"]
            for n in self._live_notes(invoice_id)
            for x in n["lines"]["data"]
            if x["invoice_line_item"] == line_id
        )

    def _note_lines(self, invoice: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        invoice_lines = {x["id"]: x for x in self._final_lines.get(invoice["id"]) or self.invoice_lines(invoice)}
        out = []
        for index, line in enumerate(params.get("lines") or []):
            where = f"lines[{index}]"
            kind = line.get("type")
            if kind == "invoice_line_item":
                line_id = line.get("invoice_line_item")
                if not line_id:
                    raise ParamError(
                        "Missing required param: invoice_line_item.",
                        param=f"{where}[invoice_line_item]",
                        code="parameter_missing",
                    )
                source = invoice_lines.get(line_id)
                if source is None:
                    raise ParamError(
                        f"Invoice line item {line_id} is not on invoice {invoice['id']}.",
                        param=f"{where}[invoice_line_item]",
                    )
                if ("amount" in line) == ("quantity" in line):
                    raise ParamError(
                        "Specify exactly one of amount or quantity for an invoice_line_item credit note line.",
                        param=f"{where}[amount]",
                    )
                if "amount" in line:
                    amount = line["amount"]
                else:
                    quantity = line["quantity"]
                    if quantity > (source.get("quantity") or 1):
                        raise ParamError(
                            f"Quantity {quantity} exceeds the invoice line item's quantity.", param=f"{where}[quantity]"
                        )
                    amount = source["amount"] * quantity // max(source.get("quantity") or 1, 1)
                if amount <= 0:
                    raise ParamError("The credit note line amount must be positive.", param=f"{where}[amount]")
                currencies.check_amount(amount, invoice["currency"], f"{where}[amount]")
                creditable = source["amount"] - self._credited_on_line(invoice["id"], line_id)
                if amount > creditable:
                    raise ParamError(
                        f"The credit amount ({amount}) for invoice line item {line_id} exceeds the amount left to "
                        f"credit on it ({max(creditable, 0)}).",
                        param=f"{where}[amount]",
                    )
                out.append({"type": kind, "invoice_line_item": line_id, "amount": amount, "quantity": 1,
                            "description": source.get("description"), "unit_amount": None})
            elif kind == "custom_line_item":
                for name in ("amount", "invoice_line_item"):
                    if name in line:
                        raise ParamError(
                            f"{name} is only valid for lines of type invoice_line_item.", param=f"{where}[{name}]"
                        )
                if "unit_amount" in line and "unit_amount_decimal" in line:
                    raise ParamError(
                        "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                        param=f"{where}[unit_amount]",
                    )
                if "unit_amount" not in line and "unit_amount_decimal" not in line:
                    raise ParamError("Missing required param: unit_amount.", param=f"{where}[unit_amount]",
                                     code="parameter_missing")
                if not line.get("description"):
                    raise ParamError("Missing required param: description.", param=f"{where}[description]",
                                     code="parameter_missing")
                quantity = line.get("quantity", 1)
                unit = Decimal(line.get("unit_amount", line.get("unit_amount_decimal", 0)))
                amount = int((unit * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                if amount <= 0:
                    raise ParamError("The credit note line amount must be positive.", param=f"{where}[unit_amount]")
                currencies.check_amount(amount, invoice["currency"], f"{where}[unit_amount]")
                out.append({"type": kind, "invoice_line_item": None, "amount": amount, "quantity": quantity,
                            "description": line["description"], "unit_amount": int(unit)})
            else:
                raise ParamError(
                    f"Invalid {where}[type]: must be one of custom_line_item or invoice_line_item",
                    param=f"{where}[type]",
                )
        return out

    def create_credit_note(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        invoice = self._invoice(params["invoice"], param="invoice", status=400)
        if invoice["status"] in ("draft", "void"):
            raise ParamError(
                f"You can only issue credit notes for finalized invoices that are not void; invoice {invoice['id']} "
                f"is {invoice['status']}.",
                param="invoice",
                code="invoice_not_editable" if invoice["status"] == "draft" else None,
            )
        if "shipping_cost" in params:
            raise ParamError("Invoice has no shipping cost to credit.", param="shipping_cost")
        if "refunds" in params:
            raise ParamError("Linking existing refunds is not supported by this server.", param="refunds")
        lines = self._note_lines(invoice, params)
        if not lines and "amount" not in params:
            raise ParamError(
                "One of amount, lines, or shipping_cost must be provided.", param="amount", code="parameter_missing"
            )
        total = sum(x["amount"] for x in lines) if lines else params["amount"]
        if lines and "amount" in params and params["amount"] != total:
            raise ParamError(
                f"The amount ({params['amount']}) must equal the sum of the lines ({total}).", param="amount"
            )
        if total <= 0:
            raise ParamError("The credit note amount must be positive.", param="amount")
        currencies.check_amount(total, invoice["currency"])
        credited = sum(n["total"] for n in self._live_notes(invoice["id"]))
        creditable = invoice["total"] - credited
        if total > creditable:
            raise ParamError(
                f"The credit note total ({total}) exceeds the amount left to credit on invoice {invoice['id']} "
                f"({max(creditable, 0)}).",
                param="amount" if not lines else "lines",
            )
        pre = min(total, max(invoice["amount_remaining"], 0))
        post = total - pre
        settled = {k: params.get(k, 0) for k in SETTLING}
        if any(v < 0 for v in settled.values()):
            raise ParamError("Settlement amounts must not be negative.", param="refund_amount")
        for name, value in settled.items():
            currencies.check_amount(value, invoice["currency"], name)
        if sum(settled.values()) != post:
            raise ParamError(
                "The sum of refund_amount, credit_amount and out_of_band_amount "
                f"({sum(settled.values())}) must equal the credit note's post_payment_amount ({post}): the part of "
                "the credit note above what is still due on the invoice.",
                param="refund_amount" if post else next(k for k in SETTLING if settled[k]),
            )
        refundable = invoice["amount_paid"] - invoice.get("amount_paid_off_stripe", 0) - invoice.get("_refunded", 0)
        if settled["refund_amount"] > refundable:
            raise ParamError(
                f"The refund amount ({settled['refund_amount']}) exceeds what was paid through Stripe and not "
                f"refunded yet ({max(refundable, 0)}).",
                param="refund_amount",
            )
        note = self._new_credit_note(invoice, params, lines, total, pre, settled)
        self._apply_credit_note(invoice, note, req, sign=1)
        self.emit("credit_note.created", note, req)
        return 200, note

    def _new_credit_note(
        self, invoice: dict[str, Any], params: dict[str, Any], lines: list[dict[str, Any]], total: int, pre: int,
        settled: dict[str, int],
    ) -> dict[str, Any]:
        from .ids import new_id

        seq = self._credit_note_seq[invoice["id"]] = self._credit_note_seq.get(invoice["id"], 0) + 1
        note_id = new_id("cn_")
        if not lines:  # an amount alone: one custom line
            lines = [{"type": "custom_line_item", "invoice_line_item": None, "amount": total, "quantity": 1,
                      "description": "Credit", "unit_amount": total}]
        data = [
            {
                "id": new_id("cnli_"),
                "object": "credit_note_line_item",
                "amount": x["amount"],
                "description": x["description"],
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": x["invoice_line_item"],
                "livemode": False,
                "metadata": {},
                "pretax_credit_amounts": [],
                "quantity": x["quantity"],
                "tax_rates": [],
                "taxes": [],
                "type": x["type"],
                "unit_amount": x["unit_amount"],
                "unit_amount_decimal": None if x["unit_amount"] is None else str(x["unit_amount"]),
            }
            for x in lines
        ]
        post = total - pre
        now = self.now()
        note: dict[str, Any] = {
            "id": note_id,
            "object": "credit_note",
            "amount": total,
            "amount_shipping": 0,
            "created": now,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "customer_account": None,
            "customer_balance_transaction": None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": params.get("effective_at", now),
            "invoice": invoice["id"],
            "lines": {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                      "url": f"/v1/credit_notes/{note_id}/lines"},
            "livemode": False,
            "memo": params.get("memo"),
            "metadata": self._merge_metadata({}, params.get("metadata")),
            "number": f"{invoice['number']}-CN-{seq:02d}",
            "out_of_band_amount": settled["out_of_band_amount"] or None,
            "pdf": f"https://pay.stripe.com/credit_notes/acct_fakestripe/test_{note_id}/pdf",
            "post_payment_amount": post,
            "pre_payment_amount": pre,
            "pretax_credit_amounts": [],
            "reason": params.get("reason"),
            "refunds": [],
            "shipping_cost": None,
            "status": "issued",
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_excluding_tax": total,
            "total_taxes": [],
            "type": "mixed" if pre and post else ("post_payment" if post else "pre_payment"),
            "voided_at": None,
            "_settled": dict(settled),
        }
        if settled["refund_amount"]:
            note["refunds"] = [{"amount_refunded": settled["refund_amount"], "refund": new_id("re_"), "type": "refund",
                                "payment_record_refund": None}]
        if settled["credit_amount"]:
            note["customer_balance_transaction"] = new_id("cbtxn_")
        self.credit_notes[note_id] = note
        return note

    def _apply_credit_note(self, invoice: dict[str, Any], note: dict[str, Any], req: dict[str, Any] | None,
                           sign: int) -> None:
        """What issuing (sign 1) or voiding (sign -1) a credit note does to its invoice and customer."""
        pre, post, settled = note["pre_payment_amount"], note["post_payment_amount"], note["_settled"]
        invoice["amount_remaining"] -= sign * pre
        invoice["amount_due"] -= sign * pre
        invoice["pre_payment_credit_notes_amount"] += sign * pre
        invoice["post_payment_credit_notes_amount"] += sign * post
        invoice["_refunded"] = invoice.get("_refunded", 0) + sign * settled["refund_amount"]
        customer = self.customers.get(invoice["customer"])
        if customer is not None and settled["credit_amount"]:
            customer["balance"] -= sign * settled["credit_amount"]  # negative balance: credit for the next invoice
        if sign > 0 and pre and invoice["status"] == "open" and invoice["amount_remaining"] == 0:
            invoice.update({"status": "paid", "next_payment_attempt": None, "auto_advance": False})
            invoice["status_transitions"]["paid_at"] = self.now()
            self.emit("invoice.paid", invoice, req)
        else:
            self.emit("invoice.updated", invoice, req)

    def retrieve_credit_note(self, params: dict[str, Any], req: dict[str, Any], credit_note_id: str) -> tuple[int, Any]:
        return 200, self._credit_note(credit_note_id)

    def list_credit_notes(self, params: dict[str, Any], req: dict[str, Any]) -> tuple[int, Any]:
        created = self._created_filter(params.get("created"))

        def keep(note: dict[str, Any]) -> bool:
            return (
                created(note)
                and ("invoice" not in params or note["invoice"] == params["invoice"])
                and ("customer" not in params or note["customer"] == params["customer"])
            )

        items = list(reversed(self.credit_notes.values()))
        return 200, self.paginate(items, params, "/v1/credit_notes", keep, kind="credit_note")

    def list_credit_note_lines(
        self, params: dict[str, Any], req: dict[str, Any], credit_note_id: str
    ) -> tuple[int, Any]:
        lines = self._credit_note(credit_note_id)["lines"]["data"]
        return 200, self.paginate(list(lines), params, f"/v1/credit_notes/{credit_note_id}/lines", kind="line_item")

    def update_credit_note(self, params: dict[str, Any], req: dict[str, Any], credit_note_id: str) -> tuple[int, Any]:
        note = self._credit_note(credit_note_id)
        if "memo" in params:
            note["memo"] = params["memo"] or None
        if "metadata" in params:
            note["metadata"] = self._merge_metadata(note["metadata"], params["metadata"])
        self.emit("credit_note.updated", note, req)
        return 200, note

    def void_credit_note(self, params: dict[str, Any], req: dict[str, Any], credit_note_id: str) -> tuple[int, Any]:
        note = self._credit_note(credit_note_id)
        if note["status"] == "void":
            raise ParamError(f"Credit note {credit_note_id} is already void.", param="id")
        if note["_settled"]["refund_amount"]:
            raise ParamError("A credit note with a refund cannot be voided.", param="id")
        invoice = self._invoice(note["invoice"])
        note.update({"status": "void", "voided_at": self.now()})
        self._apply_credit_note(invoice, note, req, sign=-1)
        self.emit("credit_note.voided", note, req)
        return 200, note
