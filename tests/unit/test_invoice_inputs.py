"""The stored invoice inputs document through the typed ``InvoiceInputs``: byte for byte the same.

Invoices finalized before the type existed store their inputs as JSON (``Invoice.inputs``) and
their fingerprint beside it. Parsing such a document and writing it back must give the very same
bytes, and the fingerprint must not move, or every stored invoice would look changed
(``invoices explain`` and ``invoices recompute`` compare fingerprints).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billctl.core.invoice import (
    Billed,
    BilledLine,
    InvoiceInputs,
    billed_for,
    fingerprint,
    late_adjustment,
    late_periods,
    rate_inputs,
    rebilled_adjustment,
)
from billctl.core.periods import Period

# a document of today's format as the database holds it (json.dumps, the JSON column's serializer):
# two segments (a plan change in Asia/Kolkata), both discount kinds, both adjustment shapes, non-ASCII text
STORED = (
    '{"schema": 1, "tenant": "acme", "period": "2026-10", "timezone": "Asia/Kolkata", "currency": "US'
    'D", "tax_rate": "8.25", "rounding": "each line rounded once, half-up, to the currency\'s minor un'
    'it; tax on the subtotal, rounded once", "segments": [{"start": "2026-09-30T18:30:00+00:00", "end'
    '": "2026-10-15T18:30:00+00:00", "fraction": "0.4838709677419354838709677419", "plan": {"id": 1, '
    '"code": "basic", "version": 2, "definition": {"name": "basic", "currency": "USD", "base_fee": "2'
    '9.00", "included_units": 10000, "price": {"model": "per_unit", "unit_price": "0.001"}, "weights"'
    ': {"/v1/ocr": "3"}}}, "usage": {"/v1/ocr": 1000, "/v1/search": 5000}}, {"start": "2026-10-15T18:'
    '30:00+00:00", "end": "2026-10-31T18:30:00+00:00", "fraction": "0.5161290322580645161290322581", '
    '"plan": {"id": 3, "code": "pro", "version": 1, "definition": {"name": "pro", "currency": "USD", '
    '"base_fee": "99", "included_units": 0, "price": {"model": "graduated", "tiers": [{"up_to": 10000'
    ', "unit_price": "0.0001"}, {"unit_price": "0.00005"}]}}}, "usage": {}}], "discounts": [{"id": 7,'
    ' "kind": "percent", "value": "10", "description": "R\\u00e9duction fid\\u00e9lit\\u00e9 10 %"}, {"i'
    'd": 8, "kind": "fixed", "value": "5.00", "description": "Discount"}], "adjustments": [{"for_peri'
    'od": "2026-10", "already_billed_on": ["INV-2026-11-000004"], "units": -250, "amount": "-0.25"}, '
    '{"for_period": "2026-09", "invoice": "INV-2026-09-000001", "usage": [{"/v1/search": 26000}], "un'
    'its": 1000, "billed_units": 25000, "charges_before": "44.00", "charges_now": "45.00", "amount": '
    '"1.00"}]}'
)
FINGERPRINT = "f6236abfe9dd8bac7b2cd7ccfed927cc99211e8eb84514816795ea01fbbe819b"


def test_stored_inputs_round_trip_byte_identical() -> None:
    doc = json.loads(STORED)
    inputs = InvoiceInputs.from_json(doc)
    assert json.dumps(inputs.to_json()) == STORED
    assert json.dumps(InvoiceInputs.from_json(inputs.to_json()).to_json()) == STORED


def test_fingerprint_unchanged() -> None:
    doc = json.loads(STORED)
    assert fingerprint(doc) == FINGERPRINT
    assert InvoiceInputs.from_json(doc).fingerprint == FINGERPRINT


def test_typed_fields() -> None:
    inputs = InvoiceInputs.from_json(json.loads(STORED))
    first = inputs.segments[0]
    assert first.start.utcoffset() is not None and first.fraction == Decimal("0.4838709677419354838709677419")
    assert first.plan.code == "basic" and first.plan.version == 2 and first.units == 6000
    assert inputs.units == 6000
    assert [d.value for d in inputs.discounts] == [Decimal("10"), Decimal("5.00")]
    assert inputs.adjustments[1]["invoice"] == "INV-2026-09-000001"
    assert inputs.with_usage([{"/v1/search": 1}, {}]).units == 1


def test_damaged_document_is_refused() -> None:
    doc = json.loads(STORED)
    del doc["segments"][0]["start"]
    with pytest.raises(KeyError):
        InvoiceInputs.from_json(doc)


def _one_plan_inputs(usage: dict[str, int]) -> InvoiceInputs:
    doc = json.loads(STORED)
    doc["segments"] = [{**doc["segments"][0], "fraction": "1", "usage": usage}]
    doc["discounts"], doc["adjustments"], doc["tax_rate"] = [], [], "0"
    return InvoiceInputs.from_json(doc)


def test_adjustment_diff_late_usage() -> None:
    inputs = _one_plan_inputs({"/v1/search": 25000})
    billed = Billed(units=25000, charged_minor=4400, numbers=())
    assert rate_inputs(inputs).subtotal == Decimal("44.00")
    assert late_adjustment("2026-10", "INV-1", "USD", inputs, [{"/v1/search": 25000}], billed) is None
    adjustment, record = late_adjustment("2026-10", "INV-1", "USD", inputs, [{"/v1/search": 26000}], billed)  # type: ignore[misc]
    assert adjustment.amount == Decimal("1.00") and record["units"] == 1000 and record["amount"] == "1.00"
    assert "amount" not in adjustment.detail


def test_adjustment_diff_rebilled_and_billed_for() -> None:
    lines = [
        BilledLine(1, "INV-A", "usage", None, 4400, {}),
        BilledLine(1, "INV-A", "tax", None, 300, {}),
        BilledLine(2, "INV-B", "adjustment", "2026-10", 100, {"units": 100}),
        BilledLine(2, "INV-B", "adjustment", "2026-09", 999, {"units": 9}),
    ]
    own = billed_for("2026-10", lines, invoice_id=1, invoice_units=25000)
    assert own == Billed(25100, 4500, ("INV-B",))
    assert rebilled_adjustment("2026-10", "USD", Billed(0, 0, ())) is None
    again = billed_for("2026-10", lines[2:3], invoice_id=None, invoice_units=0)
    adjustment, record = rebilled_adjustment("2026-10", "USD", again)  # type: ignore[misc]
    assert (
        adjustment.amount == Decimal("-1.00") and record["already_billed_on"] == ["INV-B"] and record["units"] == -100
    )


def test_late_periods_lookback() -> None:
    late = {"2026-06", "2026-08", "2026-09", "2026-10", "2026-11"}
    assert late_periods(Period(2026, 10), late, 2) == ["2026-08", "2026-09"]
