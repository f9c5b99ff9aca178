"""Pure rules for credit notes in Stripe: parameters, how the credited amount is
settled, and the reconciliation diff. Plain data in, plain data out, no I/O.

A credit note on a Stripe invoice first reduces what is still due on it (``amount_remaining``, the
credit note's ``pre_payment_amount``); what exceeds that (the ``post_payment_amount``, for a paid
or partly paid invoice) must be settled in full as a refund, a credit to the customer's balance,
or out of band: the operator's ``--settle`` choice.

Prepaid credits: Stripe's invoice total is what was due in cash (purchased credits are negative
items on it), so a local credit note that also gives back purchased credits is credited in Stripe
for its cash part only (``cash_part``), as one custom line; a note that is all credits has nothing
to credit in Stripe (its ``stripe_status`` is ``CREDITS_ONLY``).

Amounts: local credit notes hold billctl's minor units; every amount sent goes through
``to_stripe_amount`` (UGX is sent ×100) and every amount read from Stripe is compared in Stripe's
units (``to_stripe_amount(..., check=False)``), as for invoices in ``billctl.stripe.mapping``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from billctl.core.money import format_amount, from_minor, to_stripe_amount
from billctl.stripe.idempotency import credit_note_key as credit_note_key  # where callers have found it
from billctl.stripe.mapping import META_INVOICE, META_LINE, META_TENANT, Drift, show_amount
from billctl.stripe.status import StripeStatus

META_CREDIT_NOTE = "billctl_credit_note"  # on Stripe credit notes: the local credit note number
SETTLE = {"refund": "refund_amount", "balance": "credit_amount", "out_of_band": "out_of_band_amount"}
DEFAULT_SETTLE = "balance"
MEMO_MAX = 500
# the Stripe status of a credit note that gives back only purchased credits: nothing to credit in Stripe
CREDITS_ONLY = "credits only"


@dataclass(frozen=True)
class NoteLineIn:
    kind: str  # line | amount | tax
    invoice_line_position: int | None
    description: str
    amount_minor: int


@dataclass(frozen=True)
class CreditNoteIn:
    number: str
    invoice_number: str
    tenant_key: str
    currency: str
    total_minor: int
    reason: str
    settle: str
    lines: tuple[NoteLineIn, ...]


def cash_part(note: CreditNoteIn, cash_minor: int) -> CreditNoteIn:
    """The credit note Stripe gets for ``note`` when only ``cash_minor`` of it was paid in cash (the
    rest went back to purchased credits, which Stripe's invoice never billed): the note itself when
    all of it is cash, else one custom line of the cash part."""
    if cash_minor >= note.total_minor:
        return note
    c = note.currency

    def show(minor: int) -> str:
        return f"{format_amount(from_minor(minor, c), c)} {c}"

    text = (
        f"{note.number}: the part paid in cash, {show(cash_minor)} of {show(note.total_minor)} "
        f"(the other {show(note.total_minor - cash_minor)} went back to prepaid credits)"
    )
    return replace(note, total_minor=cash_minor, lines=(NoteLineIn("amount", None, text, cash_minor),))


def settlement(total_minor: int, amount_remaining: int, settle: str) -> tuple[int, dict[str, int]]:
    """(pre-payment part, the parameter settling the rest): the credit first reduces what is still
    due; the rest goes as ``settle`` says. All in billctl's minor units (``amount_remaining`` as
    read from Stripe, converted)."""
    pre = min(total_minor, max(amount_remaining, 0))
    post = total_minor - pre
    return pre, ({SETTLE[settle]: post} if post else {})


def line_ids(lines: Iterable[Mapping[str, Any]], item_ids: Mapping[int, str | None], number: str) -> dict[int, str]:
    """Stripe invoice line item ids by local line position: by the invoice item each line came from
    (stored locally at push), else by the line's ``metadata[billctl_line]``."""
    by_item = {pos: item for pos, item in item_ids.items() if item}
    found: dict[int, str] = {}
    for line in lines:
        parent = (line.get("parent") or {}).get("invoice_item_details") or {}
        item = parent.get("invoice_item")
        position = next((p for p, i in by_item.items() if i == item), None)
        meta = line.get("metadata") or {}
        if position is None and meta.get(META_INVOICE) == number and str(meta.get(META_LINE, "")).isdigit():
            position = int(meta[META_LINE])
        if position is not None:
            found[position] = line["id"]
    return found


def credit_note_params(
    note: CreditNoteIn, stripe_invoice_id: str, stripe_lines: Mapping[int, str], amount_remaining: int
) -> dict[str, Any]:
    """One Stripe credit note line per local one: invoice lines (and the tax line) credited by
    their Stripe line item, an amount as a custom line; memo and metadata name the local note.
    ``amount_remaining``: what is still due on the invoice, in billctl's minor units. Amounts are
    sent in Stripe's units for the currency; raises MoneyError for one Stripe cannot take."""

    def stripe(minor: int) -> int:
        return to_stripe_amount(minor, note.currency)

    lines: list[dict[str, Any]] = []
    for x in note.lines:
        if x.invoice_line_position is not None:
            if x.invoice_line_position not in stripe_lines:
                raise KeyError(x.invoice_line_position)
            lines.append(
                {
                    "type": "invoice_line_item",
                    "invoice_line_item": stripe_lines[x.invoice_line_position],
                    "amount": stripe(x.amount_minor),
                }
            )
        else:
            lines.append(
                {
                    "type": "custom_line_item",
                    "description": x.description[:MEMO_MAX],
                    "quantity": 1,
                    "unit_amount": stripe(x.amount_minor),
                }
            )
    _, settle = settlement(note.total_minor, amount_remaining, note.settle)
    return {
        "invoice": stripe_invoice_id,
        "lines": lines,
        "memo": f"{note.number}: {note.reason}"[:MEMO_MAX],
        "metadata": {META_CREDIT_NOTE: note.number, META_INVOICE: note.invoice_number, META_TENANT: note.tenant_key},
        **{name: stripe(amount) for name, amount in settle.items()},
    }


def match_credit_notes(remote: Iterable[Mapping[str, Any]], number: str) -> list[Mapping[str, Any]]:
    """Stripe credit notes made for local credit note ``number``, oldest first."""
    found = [c for c in remote if (c.get("metadata") or {}).get(META_CREDIT_NOTE) == number]
    return sorted(found, key=lambda c: (c.get("created", 0), c["id"]))


def paid_in_stripe(invoice: Mapping[str, Any]) -> bool:
    """Whether Stripe reports the invoice paid, or partly paid (a void would not give it back)."""
    return invoice.get("status") == StripeStatus.PAID or (invoice.get("amount_paid") or 0) > 0


@dataclass(frozen=True)
class LocalCreditNote:
    number: str
    invoice_number: str
    tenant_key: str
    currency: str
    total_minor: int
    stripe_credit_note_id: str | None
    invoice_in_stripe: bool  # its invoice is final in Stripe, so the note should be there
    stripe_total_minor: int | None = None  # what it credits in Stripe (its cash part); None: its total


def reconcile(local: Iterable[LocalCreditNote], remote: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Differences between local credit notes and the Stripe credit notes carrying billctl metadata:
    missing, duplicated, a different total, voided in Stripe, unknown locally (orphan)."""
    by_number: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for found in remote:
        number = (found.get("metadata") or {}).get(META_CREDIT_NOTE)
        if number:
            by_number[number].append(found)
    drifts: list[Drift] = []
    seen: set[str] = set()
    for note in local:
        seen.add(note.number)
        matches = match_credit_notes(by_number.get(note.number, []), note.number)
        ids = tuple(m["id"] for m in matches)
        in_stripe = note.total_minor if note.stripe_total_minor is None else note.stripe_total_minor
        if not matches:
            if in_stripe == 0 and not note.stripe_credit_note_id:
                continue  # it gave back purchased credits only: nothing to credit in Stripe
            if note.invoice_in_stripe or note.stripe_credit_note_id:
                where = f"stored id {note.stripe_credit_note_id} not found" if note.stripe_credit_note_id else "pending"
                drifts.append(
                    Drift(note.number, note.tenant_key, "missing", f"credit note not in Stripe ({where}; run push)")
                )
            continue
        if len(matches) > 1:
            drifts.append(Drift(note.number, note.tenant_key, "duplicate", f"{len(ids)} Stripe credit notes", ids))
        remote_note = next((m for m in matches if m["id"] == note.stripe_credit_note_id), matches[0])
        if note.stripe_credit_note_id != remote_note["id"]:
            drifts.append(Drift(note.number, note.tenant_key, "id", f"Stripe id {remote_note['id']} not stored", ids))
        expected = to_stripe_amount(in_stripe, note.currency, check=False)
        if remote_note.get("total") != expected:
            drifts.append(
                Drift(
                    note.number,
                    note.tenant_key,
                    "amount",
                    f"credit note: local {show_amount(expected, note.currency)}, Stripe "
                    f"{show_amount(remote_note.get('total'), note.currency)}",
                    (remote_note["id"],),
                )
            )
        if remote_note.get("status") == StripeStatus.VOID:
            drifts.append(
                Drift(note.number, note.tenant_key, "status", "credit note voided in Stripe", (remote_note["id"],))
            )
    for number, matches in sorted(by_number.items()):
        if number not in seen:
            drifts.append(
                Drift(number, "", "orphan", "credit note in Stripe, unknown locally", tuple(m["id"] for m in matches))
            )
    return drifts
