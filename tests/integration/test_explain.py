"""`billctl invoices explain`: every line traced to its inputs, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import bulk, events_file, write_plan

TIERED = """
name = "tiered"
currency = "USD"
base_fee = "10.00"
included_units = 1000
[price]
model = "graduated"
tiers = [
  { up_to = 10000, unit_price = "0.00015" },
  { unit_price = "0.00005", flat_fee = "0.50" },
]
[weights]
"/v1/ocr" = 3
"""


def setup_tiered(cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "tiered", TIERED))
    cli("tenants", "create", "acme", "--name", "Acme", "--tax-rate", "8.25")
    cli("tenants", "assign-plan", "acme", "tiered", "--effective", "2026-10-01")
    cli("discounts", "add", "acme", "--kind", "percent", "--value", "10", "--from", "2026-10-01")
    events = bulk("acme", 3_000, endpoint="/v1/ocr", chunks=3) + bulk(
        "acme", 16_001, endpoint="/v1/search", day="2026-10-20", chunks=4
    )
    cli("usage", "import", events_file(tmp_path, events))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def steps(line: dict) -> dict[str, str]:
    return {s["step"]: s["value"] for s in line["steps"]}


def test_explain_json_traces_every_line(cli, tmp_path):
    setup_tiered(cli, tmp_path)
    doc = cli("invoices", "explain", "INV-2026-10-000001", "-o", "json").json()
    shown = cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json()
    assert [x["amount"] for x in doc["lines"]] == [x["amount"] for x in shown["lines"]]
    assert doc["total"] == shown["total"]
    kinds = [x["kind"] for x in doc["lines"]]
    assert kinds == ["base", "usage", "usage", "discount", "tax"]
    base, tier1, tier2, discount, tax = doc["lines"]
    assert steps(base)["base fee"] == "10.00 × 1 = 10.00"
    usage = steps(tier1)
    # 3,000 ocr units in 3 events on one day, weight 3; 16,001 search units in 4 events
    assert usage["usage /v1/ocr"].startswith("3,000 units from 3 event(s) in 1 bucket at 2026-10-10 12:00 UTC")
    assert "weight 3 → 9,000 weighted" in usage["usage /v1/ocr"]
    assert usage["usage /v1/search"].startswith("16,001 units from 4 event(s) in 1 bucket at 2026-10-20 12:00 UTC")
    assert usage["weighted units"] == "25,001"
    assert usage["included units"] == "1,000; 1,000 used"
    assert usage["billable units"] == "max(0, 25,001 − 1,000) = 24,001"
    assert usage["tier 1 slice (1–10,000)"] == "10,000 units × 0.00015 = 1.50000"
    assert steps(tier2)["tier 2 slice (10,001–∞)"] == "14,001 units × 0.00005 + flat fee 0.50 = 1.20005"
    assert steps(tier2)["rounding"].startswith("1.20005 → 1.20 (half-up to 2 decimal place(s) (USD), -0.00005")
    assert tier2["rounding"] == {
        "unrounded": "1.20005",
        "rounded": "1.20",
        "difference": "-0.00005",
        "rule": "half-up to 2 decimal place(s) (USD)",
        "exact": False,
    }
    # discount: 10 % of 10.00 + 1.50 + 1.20 = 12.70 → 1.27; tax 8.25 % of 11.43 = 0.942975 → 0.94
    assert steps(discount)["discount"] == "10 % of the charges 12.70 = 1.27"
    assert discount["amount"]["minor"] == -127
    assert steps(tax)["tax"] == "8.25 % of the subtotal 11.43 = 0.942975"
    assert tax["amount"]["minor"] == 94
    assert doc["total"]["minor"] == 1143 + 94
    assert doc["verification"] == {
        "fingerprint": shown["fingerprint"],
        "fingerprint_matches_inputs": True,
        "inputs_reprice_to_same_lines": True,
        "problems": [],
    }


def test_explain_table_and_csv(cli, tmp_path):
    setup_tiered(cli, tmp_path)
    result = cli("invoices", "explain", "INV-2026-10-000001")
    for text in ("INV-2026-10-000001", "tier 1 slice", "usage /v1/ocr", "rounding", "discount", "12.37", "3 event(s)"):
        assert text in result.stdout, text
    assert "price again to the same lines" in result.stderr
    quiet = cli("--quiet", "invoices", "explain", "INV-2026-10-000001")
    assert quiet.stderr == "" and "tier 1 slice" in quiet.stdout
    rows = cli("invoices", "explain", "1", "-o", "csv").stdout.splitlines()
    assert rows[0] == "invoice,line,kind,description,step,value,amount,currency"
    assert any(",tax," in row and "8.25 % of the subtotal" in row for row in rows)


def test_explain_shows_usage_that_arrived_later(cli, tmp_path):
    setup_tiered(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 500, endpoint="/v1/ocr", prefix="late"), "late.ndjson"))
    doc = cli("invoices", "explain", "INV-2026-10-000001", "-o", "json").json()
    ocr = steps(doc["lines"][1])["usage /v1/ocr"]
    assert ocr.startswith("3,000 units from 4 event(s)")  # billed units; the events counted now
    assert "(now 3,500 units: +500 arrived after this invoice)" in ocr
    cli("usage", "import", events_file(tmp_path, bulk("acme", 70, endpoint="/v1/new", prefix="n"), "new.ndjson"))
    doc = cli("invoices", "explain", "INV-2026-10-000001", "-o", "json").json()
    assert steps(doc["lines"][1])["usage /v1/new"] == (
        "not on this invoice (now 70 units from 1 event(s): arrived after this invoice)"
    )
    assert doc["verification"]["problems"] == []  # the invoice itself is untouched


def test_explain_unknown_invoice(cli, tmp_path):
    cli("db", "upgrade")
    result = cli("invoices", "explain", "INV-NOPE", expect=3)
    assert "unknown invoice" in result.stderr and result.stdout == ""


def test_explain_adjustment_line(cli, tmp_path):
    setup_tiered(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 500, endpoint="/v1/ocr", prefix="late"), "late.ndjson"))
    cli("invoices", "finalize", "--period", "2026-11", "--yes", "--allow-open-period")  # a month later
    doc = cli("invoices", "explain", "INV-2026-11-000002", "-o", "json").json()
    (adjustment,) = [x for x in doc["lines"] if x["kind"] == "adjustment"]
    s = steps(adjustment)
    assert s["for period"] == "2026-10 (invoice INV-2026-10-000001)"
    assert s["usage"] == "billed 19,001 units, now 19,501 units (+500)"
    # 500 ocr units × weight 3 = 1,500 more units in tier 2 at 0.00005 = 0.075; less the 10 % discount
    assert s["charges before tax"].startswith("billed 11.43, now 11.50")
    assert doc["verification"]["problems"] == []
