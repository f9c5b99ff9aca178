"""`billctl invoices recompute`: a finalized period priced again from today's data, compared line by line."""

from __future__ import annotations

from tests.helpers import bulk, events_file, write_plan
from tests.integration.test_invoicing import _table_counts, setup_basic

CHEAPER = """
name = "basic"
currency = "USD"
base_fee = "19.00"
included_units = 10000
[price]
model = "per_unit"
unit_price = "0.001"
[weights]
"/v1/ocr" = 3
"""


def finalized(cli, tmp_path):
    setup_basic(cli, tmp_path, tax_rate="10")
    cli("tenants", "create", "globex", "--currency", "USD")
    cli("tenants", "assign-plan", "globex", "basic", "--effective", "2026-10-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000) + bulk("globex", 5_000)))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def test_identical_inputs_give_identical_output_and_fingerprint(cli, tmp_path, db_url):
    finalized(cli, tmp_path)
    before = _table_counts(db_url)
    first = cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "json")
    second = cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "json")
    assert first.stdout == second.stdout  # same inputs, same output, byte for byte
    doc = first.json()
    assert doc["summary"] == {"invoices": 2, "changed": 0, "unchanged": 2}
    shown = {i["number"]: i for i in cli("invoices", "list", "-o", "json").json()}
    for inv in doc["invoices"]:
        assert inv["changed"] is False and inv["same_inputs"] is True
        stored = cli("invoices", "show", inv["number"], "-o", "json").json()
        assert inv["fingerprint"] == {"invoiced": stored["fingerprint"], "now": stored["fingerprint"]}
        assert inv["now"]["total"] == inv["invoiced"]["total"] == shown[inv["number"]]["total"]
        assert {line["status"] for line in inv["lines"]} == {"same"}
        assert inv["proposal"]["action"] == "none"
    assert _table_counts(db_url) == before  # writes nothing
    table = cli("invoices", "recompute", "--period", "2026-10", "--diff", "--exit-code")
    assert "0 of 2 invoice(s) differ" in table.stdout and "same fingerprints" in table.stderr


def test_late_usage_shows_line_differences_and_the_adjustment(cli, tmp_path, db_url):
    finalized(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 2_000, prefix="late"), "late.ndjson"))
    before = _table_counts(db_url)
    doc = cli("invoices", "recompute", "--period", "2026-10", "--tenant", "acme", "--diff", "-o", "json").json()
    (inv,) = doc["invoices"]
    assert inv["changed"] is True and inv["same_inputs"] is False
    assert inv["fingerprint"]["now"] != inv["fingerprint"]["invoiced"]
    assert inv["difference"]["subtotal"]["minor"] == 200  # 2,000 units × 0.001
    assert inv["difference"]["tax"]["minor"] == 20
    assert inv["difference"]["total"]["minor"] == 220
    changed = [line for line in inv["lines"] if line["status"] == "changed"]
    assert [line["kind"] for line in changed] == ["usage", "tax"]
    usage = changed[0]
    assert usage["invoiced"]["quantity"] == "15000" and usage["now"]["quantity"] == "17000"
    assert usage["difference"]["minor"] == 200
    assert inv["reasons"] == ["usage changed: 25,000 → 27,000 units (+2,000, late usage)"]
    assert inv["proposal"]["action"] == "adjustment"
    # the proposal matches what the next invoice really does
    (nov,) = cli("invoices", "preview", "--period", "2026-11", "--tenant", "acme", "-o", "json").json()["invoices"]
    assert [x["amount"]["minor"] for x in nov["lines"] if x["kind"] == "adjustment"] == [200]
    assert _table_counts(db_url) == before
    # exit code for a scheduled check
    result = cli("invoices", "recompute", "--period", "2026-10", "--exit-code", expect=10)
    assert "1 of 2 invoice(s) differ" in result.stdout
    cli("invoices", "recompute", "--period", "2026-10")  # without --exit-code: 0


def test_corrected_plan_proposes_a_credit(cli, tmp_path):
    finalized(cli, tmp_path)
    cli("plans", "update", "--file", write_plan(tmp_path, "cheaper", CHEAPER))
    result = cli("invoices", "recompute", "--period", "2026-10", "--diff")
    assert "2 of 2 invoice(s) differ" in result.stdout
    assert "plan basic changed: v1 → v2" in result.stdout
    assert "credit" in result.stdout and "-10.00" in result.stdout
    doc = cli("invoices", "recompute", "--period", "2026-10", "-o", "json").json()
    globex = next(i for i in doc["invoices"] if i["tenant"] == "globex")
    assert globex["difference"]["total"]["minor"] == -1000
    assert globex["proposal"]["action"] == "credit"
    assert "lines" not in globex  # only with --diff
    rows = cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "csv").stdout.splitlines()
    assert rows[0].startswith("invoice,tenant,period,status,kind,description")
    assert any(",changed,base," in row and ",-10.00," in row for row in rows)


def test_recompute_errors(cli, tmp_path):
    cli("db", "upgrade")
    assert "not a billing month" in cli("invoices", "recompute", "--period", "2026-13", expect=3).stderr
    assert "unknown tenant" in cli("invoices", "recompute", "--period", "2026-10", "-t", "nope", expect=3).stderr
    empty = cli("invoices", "recompute", "--period", "2026-10", "-o", "json").json()
    assert empty["invoices"] == [] and empty["summary"]["invoices"] == 0


def test_invoice_with_an_adjustment_recomputes_identically(cli, tmp_path):
    """November carries an adjustment for October's late usage: recomputing November reuses it as
    settled history, so nothing differs and the fingerprint is the same."""
    finalized(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 2_000, prefix="late"), "late.ndjson"))
    cli("invoices", "finalize", "--period", "2026-11", "--yes", "--allow-open-period")  # a month later
    doc = cli("invoices", "recompute", "--period", "2026-11", "--tenant", "acme", "--diff", "-o", "json").json()
    (inv,) = doc["invoices"]
    assert inv["changed"] is False and inv["same_inputs"] is True
    assert [line["kind"] for line in inv["lines"]] == ["base", "usage", "adjustment", "tax"]
    assert {line["status"] for line in inv["lines"]} == {"same"}
    # October now differs from what was invoiced, and says the adjustment took care of it
    (october,) = cli("invoices", "recompute", "-p", "2026-10", "-t", "acme", "-o", "json").json()["invoices"]
    assert october["changed"] is True and october["proposal"]["action"] == "adjustment"


def test_tenant_without_an_invoice_is_reported(cli, tmp_path):
    finalized(cli, tmp_path)
    cli("tenants", "create", "latecomer")
    cli("tenants", "assign-plan", "latecomer", "basic", "--effective", "2026-10-01")  # after finalize
    doc = cli("invoices", "recompute", "--period", "2026-10", "-o", "json").json()
    assert doc["not_invoiced"] == ["latecomer"]
    assert doc["summary"]["changed"] == 0
    result = cli("invoices", "recompute", "--period", "2026-10", "--exit-code", expect=10)
    assert "have no invoice for 2026-10: latecomer" in result.stderr
