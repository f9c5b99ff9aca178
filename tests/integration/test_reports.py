"""`billctl report revenue` and `billctl invoices export`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

from tests.helpers import BASIC, bulk, events_file, write_plan

PREMIUM = """
name = "premium"
currency = "USD"
base_fee = "100.00"
included_units = 0
[price]
model = "per_unit"
unit_price = "0.002"
"""

EURO = """
name = "euro"
currency = "EUR"
base_fee = "50.00"
included_units = 0
[price]
model = "per_unit"
unit_price = "0.01"
"""


def two_months(cli, tmp_path) -> None:
    """September: acme (basic), globex (basic), old (basic). October: acme (basic), globex moved to
    premium, old gone (closed), newco (premium) and berlin (EUR) gained."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    cli("plans", "create", "--file", write_plan(tmp_path, "premium", PREMIUM))
    cli("plans", "create", "--file", write_plan(tmp_path, "euro", EURO))
    for tenant in ("acme", "globex", "old"):
        cli("tenants", "create", tenant)
        cli("tenants", "assign-plan", tenant, "basic", "--effective", "2026-09-01")
    cli("tenants", "create", "berlin", "--currency", "EUR", "--tax-rate", "19")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 20_000, day="2026-09-10"), "sep.ndjson"))
    cli("invoices", "finalize", "--period", "2026-09", "--yes")
    cli("tenants", "update", "old", "--status", "closed")
    cli("tenants", "assign-plan", "globex", "premium", "--effective", "2026-10-01")
    cli("tenants", "create", "newco")
    cli("tenants", "assign-plan", "newco", "premium", "--effective", "2026-10-01")
    cli("tenants", "assign-plan", "berlin", "euro", "--effective", "2026-10-01")
    events = bulk("acme", 30_000) + bulk("globex", 10_000) + bulk("newco", 1_000) + bulk("berlin", 500)
    cli("usage", "import", events_file(tmp_path, events, "oct.ndjson"))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def test_revenue_json(cli, tmp_path):
    two_months(cli, tmp_path)
    doc = cli("report", "revenue", "--period", "2026-10", "-o", "json").json()
    assert doc["period"] == "2026-10" and doc["previous_period"] == "2026-09"
    plans = {(g["plan"], g["currency"]): g for g in doc["by_plan"]}
    # October: acme basic 29 + 20,000 × 0.001 = 49.00; globex premium 100 + 20.00; newco 100 + 2.00; berlin 55.00 EUR
    assert plans[("basic", "USD")]["revenue"]["minor"] == 4900
    assert plans[("basic", "USD")]["previous_revenue"]["minor"] == 3900 + 2900 + 2900  # acme, globex, old
    assert plans[("basic", "USD")]["change_percent"] == "-49.5"
    assert plans[("premium", "USD")]["revenue"]["minor"] == 12000 + 10200
    assert plans[("premium", "USD")]["change_percent"] is None  # nothing on premium in September
    assert plans[("euro", "EUR")]["revenue"]["minor"] == 5500
    assert plans[("euro", "EUR")]["tax"]["minor"] == 1045
    assert plans[("euro", "EUR")]["total"]["minor"] == 6545
    currencies = {g["currency"]: g for g in doc["by_currency"]}
    assert currencies["USD"]["revenue"]["minor"] == 4900 + 12000 + 10200
    assert currencies["USD"]["previous_revenue"]["minor"] == 9700
    assert currencies["USD"]["change_percent"] == "179.4"
    assert currencies["EUR"]["invoices"] == 1
    assert [t["tenant"] for t in doc["tenants"]["gained"]] == ["berlin", "newco"]
    assert [t["tenant"] for t in doc["tenants"]["lost"]] == ["old"]
    assert [(t["tenant"], t["revenue"]["minor"]) for t in doc["top"]] == [
        ("berlin", 5500),
        ("globex", 12000),
        ("newco", 10200),
        ("acme", 4900),
    ]


def test_revenue_table_csv_and_top(cli, tmp_path):
    two_months(cli, tmp_path)
    table = cli("report", "revenue", "--period", "2026-10").stdout
    for text in ("Revenue 2026-10 by plan", "premium", "222.00", "-49.5", "█", "Top tenants", "gained", "lost", "old"):
        assert text in table, text
    rows = list(csv.DictReader(io.StringIO(cli("report", "revenue", "--period", "2026-10", "-o", "csv").stdout)))
    assert {r["section"] for r in rows} == {"plan", "currency", "gained", "lost", "top"}
    usd = next(r for r in rows if r["section"] == "currency" and r["currency"] == "USD")
    assert usd["revenue"] == "271.00" and usd["previous_revenue"] == "97.00" and usd["change_percent"] == "179.4"
    top1 = cli("report", "revenue", "--period", "2026-10", "--top", "1", "-o", "json").json()["top"]
    assert [t["tenant"] for t in top1] == ["berlin", "globex"]  # one per currency


def test_revenue_leaves_out_void_invoices_and_empty_periods(cli, tmp_path):
    two_months(cli, tmp_path)
    number = next(i["number"] for i in cli("invoices", "list", "-o", "json").json() if i["tenant"] == "berlin")
    cli("invoices", "void", number, "--reason", "test", "--yes")
    doc = cli("report", "revenue", "--period", "2026-10", "-o", "json").json()
    assert "EUR" not in {g["currency"] for g in doc["by_currency"]}
    empty = cli("report", "revenue", "--period", "2027-06")
    assert empty.stdout == "" and "no finalized invoices" in empty.stderr
    assert cli("report", "revenue", "--period", "2027-06", "-o", "json").json()["by_plan"] == []
    assert "not a billing month" in cli("report", "revenue", "--period", "june", expect=3).stderr


def test_export_csv_one_row_per_line(cli, tmp_path):
    two_months(cli, tmp_path)
    result = cli("invoices", "export", "--period", "2026-10", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "tenant",
        "invoice",
        "period",
        "line",
        "kind",
        "description",
        "quantity",
        "unit_price",
        "amount",
        "amount_minor",
        "tax_rate",
        "currency",
        "credit_note",
    ]
    invoices = cli("invoices", "list", "--period", "2026-10", "-o", "json").json()
    assert {r["invoice"] for r in rows} == {i["number"] for i in invoices}
    for inv in invoices:  # the rows of an invoice add up to its total, tax line included
        mine = [r for r in rows if r["invoice"] == inv["number"]]
        assert sum(int(r["amount_minor"]) for r in mine) == inv["total"]["minor"]
        assert [int(r["line"]) for r in mine] == list(range(1, len(mine) + 1))
    berlin = [r for r in rows if r["tenant"] == "berlin"]
    assert [(r["kind"], r["amount"], r["tax_rate"], r["currency"]) for r in berlin] == [
        ("base", "50.00", "19", "EUR"),
        ("usage", "5.00", "19", "EUR"),
        ("tax", "10.45", "19", "EUR"),
    ]
    assert berlin[1]["quantity"] == "500" and berlin[1]["unit_price"] == "0.01"
    assert "line(s) of 4 invoice(s)" in result.stderr


def test_export_json_and_filters(cli, tmp_path):
    two_months(cli, tmp_path)
    doc = cli("invoices", "export", "--period", "2026-10", "--format", "json", "--tenant", "acme").json()
    assert {d["tenant"] for d in doc} == {"acme"}
    usage = next(d for d in doc if d["kind"] == "usage")
    assert usage["amount"] == {"minor": 2000, "currency": "USD", "decimal": "20.00"}
    assert usage["period"] == "2026-10" and usage["invoice"].startswith("INV-2026-10-")
    assert cli("invoices", "export", "-p", "2026-10", "-o", "json", "-t", "old").json() == []  # closed in Oct
    assert "acme" in cli("invoices", "export", "-p", "2026-10", "--format", "table").stdout
    assert cli("invoices", "export", "-p", "2026-10", "--format", "xml", expect=2).exit_code == 2
