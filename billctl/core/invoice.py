"""The invoice as a domain type: its life cycle (``billctl.core.lifecycle``), its
typed inputs and fingerprint, the adjustment diff."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from billctl.core.credits import credit_lines
from billctl.core.invoice_credits import InputCredit, credited_draft, stored_application
from billctl.core.money import from_minor
from billctl.core.periods import Period
from billctl.core.plans import parse_plan
from billctl.core.rating import rate
from billctl.core.types import Adjustment, Discount, DiscountKind, InvoiceDraft, Segment
from billctl.core.types import Plan as PlanSpec

# ---------------------------------------------------------------- the inputs document
#
# What a finalized invoice was computed from, stored with it (``Invoice.inputs``, JSON) and hashed
# into its fingerprint. ``InvoiceInputs.from_json(doc).to_json()`` gives back the very document
# stored (same keys, same order, same strings), so the fingerprint of a stored invoice does not
# change by passing through this type (tests/unit/test_invoice_inputs.py holds it to that).

INPUTS_SCHEMA = 1
ROUNDING_RULE = "each line rounded once, half-up, to the currency's minor unit; tax on the subtotal, rounded once"

AdjustmentRecord = dict[str, Any]  # one adjustment's inputs: what it was computed from (two shapes, see below)


@dataclass(frozen=True)
class PlanRef:
    """The plan version a segment was priced under, with its whole definition."""

    id: int | None
    code: str
    version: int
    definition: dict[str, Any]

    def spec(self) -> PlanSpec:
        """The validated plan (``PlanError`` when the definition no longer passes)."""
        return replace(parse_plan(self.definition), version=self.version)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "version": self.version, "definition": self.definition}


@dataclass(frozen=True)
class InputSegment:
    """A part of the period under one plan: [start, end), its share of the period, its usage."""

    start: datetime
    end: datetime
    fraction: Decimal
    plan: PlanRef
    usage: dict[str, int]  # endpoint -> units, in the order stored (sorted by endpoint when built)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InputSegment:
        plan = doc["plan"]
        return cls(
            start=datetime.fromisoformat(doc["start"]),
            end=datetime.fromisoformat(doc["end"]),
            fraction=Decimal(doc["fraction"]),
            plan=PlanRef(plan["id"], plan["code"], plan["version"], plan["definition"]),
            usage=dict(doc["usage"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "fraction": str(self.fraction),
            "plan": self.plan.to_json(),
            "usage": dict(self.usage),
        }

    @property
    def units(self) -> int:
        return sum(self.usage.values())


@dataclass(frozen=True)
class InputDiscount:
    id: int | None
    kind: DiscountKind
    value: Decimal
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "value": str(self.value), "description": self.description}

    def as_rating(self) -> Discount:
        return Discount(kind=self.kind, value=self.value, description=self.description, id=self.id)


@dataclass(frozen=True)
class InvoiceInputs:
    """Everything one invoice's amounts were computed from (``Invoice.inputs``)."""

    tenant: str
    period: str
    timezone: str
    currency: str
    tax_rate: str  # percent, exact decimal string (as the tenant holds it)
    segments: tuple[InputSegment, ...]
    discounts: tuple[InputDiscount, ...] = ()
    adjustments: tuple[AdjustmentRecord, ...] = ()
    credits: tuple[InputCredit, ...] = ()  # prepaid credits drawn (absent from the document when none)
    schema: int = INPUTS_SCHEMA
    rounding: str = ROUNDING_RULE

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InvoiceInputs:
        """Parse a stored inputs document (``KeyError``/``ValueError`` when it is not one)."""
        return cls(
            schema=doc["schema"],
            tenant=doc["tenant"],
            period=doc["period"],
            timezone=doc["timezone"],
            currency=doc["currency"],
            tax_rate=doc["tax_rate"],
            rounding=doc["rounding"],
            segments=tuple(InputSegment.from_json(s) for s in doc["segments"]),
            discounts=tuple(
                InputDiscount(d["id"], d["kind"], Decimal(d["value"]), d["description"]) for d in doc["discounts"]
            ),
            adjustments=tuple(dict(a) for a in doc.get("adjustments", [])),
            credits=tuple(InputCredit.from_json(c) for c in doc.get("credits", [])),
        )

    def to_json(self) -> dict[str, Any]:
        """The document as stored: this key order is part of the stored bytes, keep it. ``credits``
        only when some were drawn, so an invoice without credits keeps the document it always had."""
        doc: dict[str, Any] = {
            "schema": self.schema,
            "tenant": self.tenant,
            "period": self.period,
            "timezone": self.timezone,
            "currency": self.currency,
            "tax_rate": self.tax_rate,
            "rounding": self.rounding,
            "segments": [s.to_json() for s in self.segments],
            "discounts": [d.to_json() for d in self.discounts],
            "adjustments": [dict(a) for a in self.adjustments],
        }
        if self.credits:
            doc["credits"] = [c.to_json() for c in self.credits]
        return doc

    @property
    def period_end(self) -> datetime:
        """The end of the period priced (of its last segment)."""
        return max(s.end for s in self.segments)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.to_json())

    @property
    def units(self) -> int:
        """Units of usage over every segment (unweighted)."""
        return sum(s.units for s in self.segments)

    def with_usage(self, usage: Sequence[dict[str, int]]) -> InvoiceInputs:
        """The same inputs with each segment's usage replaced (the period priced again with today's usage)."""
        return replace(self, segments=tuple(replace(s, usage=u) for s, u in zip(self.segments, usage, strict=True)))


def fingerprint(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an inputs document (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_code_of(doc: Mapping[str, Any] | None) -> str:
    """The plan an inputs document ends under ("?" for an empty or damaged one): for reports."""
    segments = (doc or {}).get("segments") or []
    return str(segments[-1]["plan"]["code"]) if segments else "?"


def segment_label(code: str, start: datetime, end: datetime, tz: str) -> str:
    """Local, inclusive dates: a segment [Oct 16 00:00, Nov 1 00:00) reads "2026-10-16–2026-10-31"."""
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    last = (end - timedelta(seconds=1)).astimezone(zone).date()
    return f"{code}, {first}–{last}"


def rating_segments(inputs: InvoiceInputs) -> list[Segment]:
    """The segments of ``inputs`` as rating takes them."""
    return [
        Segment(
            start=s.start,
            end=s.end,
            plan=s.plan.spec(),
            usage=s.usage,
            fraction=s.fraction,
            label=segment_label(s.plan.code, s.start, s.end, inputs.timezone),
        )
        for s in inputs.segments
    ]


def rate_inputs(
    inputs: InvoiceInputs, adjustments: Sequence[Adjustment] = (), *, with_tax: bool = True
) -> InvoiceDraft:
    """Price an inputs document: the same pure rating finalize used."""
    return rate(
        currency=inputs.currency,
        segments=rating_segments(inputs),
        discounts=[d.as_rating() for d in inputs.discounts],
        tax_rate=Decimal(inputs.tax_rate) if with_tax else Decimal(0),
        adjustments=adjustments,
    )


def price_inputs(inputs: InvoiceInputs, adjustments: Sequence[Adjustment] = ()) -> InvoiceDraft:
    """Price an inputs document as finalize did, its stored credits drawn again (from what each
    grant had then, not from today's ledger): the lines of the invoice it was stored with."""
    draft = rate_inputs(inputs, adjustments)
    if not inputs.credits:
        return draft
    application, grants = stored_application(
        inputs.credits,
        currency=inputs.currency,
        charges=draft.subtotal,
        tax_rate=Decimal(inputs.tax_rate),
        period_end=inputs.period_end,
    )
    return credited_draft(draft, application, credit_lines(application, grants))


def jsonable(value: object) -> object:
    """``value`` with Decimals and datetimes as strings, tuples as lists, keys as strings (line details)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- the adjustment diff (invariants 5 and 11)
#
# Late usage for a finalized period is billed on the tenant's next invoice as the difference between
# what the period is worth now and what *live* invoices bill for it (its own invoice, and adjustment
# lines for it on any live invoice). Working from what live invoices bill, never from what was once
# billed, keeps a unit from being billed twice whatever is voided and finalized again, in any order.


@dataclass(frozen=True)
class BilledLine:
    """A line of a live invoice, as the adjustment diff reads it."""

    invoice_id: int
    number: str
    kind: str
    for_period: str | None
    amount_minor: int
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class Billed:
    """What live invoices bill for one period: units, pre-tax minor units, and the numbers of the
    other invoices that carry adjustment lines for it."""

    units: int
    charged_minor: int
    numbers: tuple[str, ...]


def adjustment_units(detail: Mapping[str, Any]) -> int:
    """The unit change an adjustment line billed (older lines kept usage snapshots only)."""
    if "units" in detail:
        return int(detail["units"])
    return sum(sum(u.values()) for u in detail.get("usage", [])) - sum(
        sum(u.values()) for u in detail.get("billed_usage", [])
    )


def billed_for(period: str, lines: Iterable[BilledLine], *, invoice_id: int | None, invoice_units: int) -> Billed:
    """What live invoices bill for ``period``: the period's own live invoice ``invoice_id`` (its
    ``invoice_units`` of usage and its lines but tax and adjustments for other periods) plus every
    adjustment line for ``period`` on a live invoice. ``lines``: those lines, in invoice and line order."""
    units = invoice_units if invoice_id is not None else 0
    charged, numbers = 0, []
    for line in lines:
        if line.kind in ("tax", "credit") or (line.kind == "adjustment" and line.for_period != period):
            continue
        charged += line.amount_minor
        if line.kind == "adjustment":
            units += adjustment_units(line.detail)
            if line.invoice_id != invoice_id and line.number not in numbers:
                numbers.append(line.number)
    return Billed(units, charged, tuple(numbers))


def late_periods(period: Period, late: Iterable[str], lookback: int) -> list[str]:
    """The earlier periods with late usage that ``period``'s invoice adjusts (at most ``lookback`` back)."""
    oldest = period
    for _ in range(lookback):
        oldest = oldest.previous()
    return sorted(p for p in late if str(oldest) <= p < str(period))


def rebilled_adjustment(period: str, currency: str, billed: Billed) -> tuple[Adjustment, AdjustmentRecord] | None:
    """When ``period`` is billed again (its invoice was voided): a line taking off what live invoices
    already billed for it as adjustments. None when none did."""
    if not billed.numbers:
        return None
    units = billed.units
    amount = -from_minor(billed.charged_minor, currency)
    record = {"for_period": period, "already_billed_on": list(billed.numbers), "units": -units, "amount": str(amount)}
    description = f"Already billed for {period} as adjustments on {', '.join(billed.numbers)}: {-units:+,} units"
    return Adjustment(for_period=period, amount=amount, description=description, detail=record), record


def late_adjustment(
    for_period: str, number: str, currency: str, inputs: InvoiceInputs, usage_now: list[dict[str, int]], billed: Billed
) -> tuple[Adjustment, AdjustmentRecord] | None:
    """The adjustment for late usage of ``for_period`` (invoice ``number``, priced with its own
    ``inputs``): what the period is worth with ``usage_now`` less what live invoices bill for it.
    None when neither units nor charges changed."""
    before = from_minor(billed.charged_minor, currency)
    after = rate_inputs(inputs.with_usage(usage_now), with_tax=False).subtotal
    delta_units = sum(sum(u.values()) for u in usage_now) - billed.units
    if delta_units == 0 and after == before:
        return None
    record: AdjustmentRecord = {
        "for_period": for_period,
        "invoice": number,
        "usage": usage_now,
        "units": delta_units,
        "billed_units": billed.units,
        "charges_before": str(before),
        "charges_now": str(after),
    }
    description = f"Adjustment for {for_period} ({number}): {delta_units:+,} units of late usage"
    adjustment = Adjustment(for_period=for_period, amount=after - before, description=description, detail=record)
    return adjustment, {**record, "amount": str(after - before)}
