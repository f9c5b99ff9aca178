"""End-to-end through the CLI, on SQLite and PostgreSQL: plans, tenants, usage, preview, finalize."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.conftest import SAMPLES
from tests.helpers import BASIC, bulk, events_file, write_plan


def setup_basic(cli, tmp_path: Path, tenant: str = "acme", **tenant_opts: str) -> None:
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in tenant_opts.items()]
    cli("tenants", "create", tenant, "--name", tenant.title(), *args)
    cli("tenants", "assign-plan", tenant, "basic", "--effective", "2026-10-01")


def test_worked_example_per_unit_with_included_units(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000, chunks=5)))
    doc = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()
    (invoice,) = doc["invoices"]
    assert invoice["total"] == {"minor": 4400, "currency": "USD", "decimal": "44.00"}
    assert doc["summary"]["currencies"][0]["total"]["minor"] == 4400
    assert doc["dry_run"] is True
    assert sum(line["amount"]["minor"] for line in invoice["lines"]) == invoice["total"]["minor"]


def test_weights_and_included_units_explained(cli, tmp_path):
    setup_basic(cli, tmp_path)
    events = bulk("acme", 1000, endpoint="/v1/ocr") + bulk("acme", 5000, endpoint="/v1/search")
    cli("usage", "import", events_file(tmp_path, events))
    (invoice,) = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()["invoices"]
    # 1,000 ocr x 3 + 5,000 = 8,000 weighted units, all inside the 10,000 included: base fee only.
    assert invoice["total"]["minor"] == 2900
    usage = [line for line in invoice["lines"] if line["kind"] == "usage"]
    assert usage and all(line["amount"]["minor"] == 0 for line in usage)
    assert "8,000" in usage[0]["description"] or "8000" in str(usage[0]["detail"])


def test_preview_table_and_csv(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))
    table = cli("invoices", "preview", "--period", "2026-10")
    assert "44.00" in table.stdout and "acme" in table.stdout
    csv = cli("invoices", "preview", "--period", "2026-10", "-o", "csv").stdout.splitlines()
    assert csv[0].startswith("tenant,period,number,status,line,kind")
    assert any(",base," in row and "29.00" in row for row in csv[1:])


def _table_counts(db_url: str) -> dict[str, int]:
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
        counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in tables}
    engine.dispose()
    return counts


def test_preview_and_dry_runs_write_nothing(cli, tmp_path, db_url):
    setup_basic(cli, tmp_path)
    path = events_file(tmp_path, bulk("acme", 25_000))
    before = _table_counts(db_url)
    cli("usage", "import", path, "--dry-run")
    cli("invoices", "preview", "--period", "2026-10")
    cli("invoices", "finalize", "--period", "2026-10", "--dry-run")
    assert _table_counts(db_url) == before
    cli("usage", "import", path)
    assert _table_counts(db_url) != before


def test_finalize_is_exactly_once_and_numbered(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("tenants", "create", "globex", "--currency", "USD")
    cli("tenants", "assign-plan", "globex", "basic", "--effective", "2026-10-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))
    preview = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()
    first = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()
    assert first["outcomes"] == {"finalized": 2}
    numbers = sorted(i["number"] for i in first["invoices"])
    assert numbers == ["INV-2026-10-000001", "INV-2026-10-000002"]
    # preview and finalize price identically (same code path)
    assert {i["tenant"]: i["total"] for i in preview["invoices"]} == {
        i["tenant"]: i["total"] for i in first["invoices"]
    }
    again = cli("invoices", "finalize", "--period", "2026-10", "--yes")
    assert "already finalized" in again.stderr
    assert cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()["outcomes"] == {
        "already finalized": 2
    }
    listed = cli("invoices", "list", "--period", "2026-10", "-o", "json").json()
    assert len(listed) == 2
    shown = cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json()
    assert shown["status"] == "finalized" and shown["lines"]
    text = cli("invoices", "show", "INV-2026-10-000001").stderr
    assert "how each line was computed" in text


def test_finalize_needs_confirmation_without_terminal(cli, tmp_path):
    setup_basic(cli, tmp_path)
    result = cli("invoices", "finalize", "--period", "2026-10", expect=3)
    assert "--yes" in result.stderr
    assert cli("invoices", "list", "-o", "json").json() == []


def test_custom_number_pattern(cli, tmp_path):
    setup_basic(cli, tmp_path)
    doc = cli(
        "--set",
        "billing.invoice_number_pattern=ACME/{year}/{seq:04d}",
        "invoices",
        "finalize",
        "--period",
        "2026-10",
        "--yes",
        "-o",
        "json",
    ).json()
    assert doc["invoices"][0]["number"] == "ACME/2026/0001"


def test_late_usage_becomes_adjustment_on_next_invoice(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    october = cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json()
    late = cli("usage", "import", events_file(tmp_path, bulk("acme", 2_000, prefix="late"), "late.ndjson"))
    assert "finalized period 2026-10" in late.stderr
    (nov,) = cli("invoices", "preview", "--period", "2026-11", "-o", "json").json()["invoices"]
    adjustments = [line for line in nov["lines"] if line["kind"] == "adjustment"]
    assert len(adjustments) == 1
    assert "2026-10" in adjustments[0]["description"]
    assert adjustments[0]["amount"]["minor"] == 200  # 2,000 units x 0.001
    assert nov["total"]["minor"] == 2900 + 200
    cli("invoices", "finalize", "--period", "2026-11", "--yes", "--allow-open-period")  # a month later
    # history is not rewritten
    assert cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json() == october
    # the adjustment is billed once: December has none
    (dec,) = cli("invoices", "preview", "--period", "2026-12", "-o", "json").json()["invoices"]
    assert not [line for line in dec["lines"] if line["kind"] == "adjustment"]
    assert dec["total"]["minor"] == 2900
    # more late usage for October after November was billed: only the new difference
    cli("usage", "import", events_file(tmp_path, bulk("acme", 1_000, prefix="later"), "later.ndjson"))
    (dec,) = cli("invoices", "preview", "--period", "2026-12", "-o", "json").json()["invoices"]
    assert [line["amount"]["minor"] for line in dec["lines"] if line["kind"] == "adjustment"] == [100]


def test_void_and_reissue(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    missing_reason = cli("invoices", "void", "INV-2026-10-000001", "--reason", " ", "--yes", expect=3)
    assert "--reason" in missing_reason.stderr
    cli("invoices", "void", "INV-2026-10-000001", "--reason", "wrong plan", "--yes")
    shown = cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json()
    assert shown["status"] == "void" and shown["void_reason"] == "wrong plan"
    cli("invoices", "void", "INV-2026-10-000001", "--reason", "again", "--yes", expect=9)
    doc = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()
    assert doc["invoices"][0]["number"] == "INV-2026-10-000002"


def test_plan_edit_after_invoice_makes_new_version(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))
    # before any invoice: edited in place
    cli("plans", "update", "--file", write_plan(tmp_path, "basic", BASIC.replace("29.00", "30.00")))
    assert cli("plans", "show", "basic", "-o", "json").json()["version"] == 1
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    result = cli("plans", "update", "--file", write_plan(tmp_path, "basic", BASIC.replace("29.00", "35.00")))
    assert "v2" in result.stderr
    shown = cli("plans", "show", "basic", "-o", "json").json()
    assert shown["version"] == 2 and [v["version"] for v in shown["versions"]] == [1, 2]
    october = cli("invoices", "show", "INV-2026-10-000001", "-o", "json").json()
    assert october["total"]["minor"] == 3000 + 1500  # priced with v1 (30.00), unchanged
    (nov,) = cli("invoices", "preview", "--period", "2026-11", "-o", "json").json()["invoices"]
    assert nov["total"]["minor"] == 3500


def test_mid_period_plan_change_prices_segments(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli(
        "plans",
        "create",
        "--file",
        write_plan(
            tmp_path,
            "flat",
            """
name = "flat"
currency = "USD"
base_fee = "62.00"
[price]
model = "per_unit"
unit_price = "0"
""",
        ),
    )
    cli("tenants", "assign-plan", "acme", "flat", "--effective", "2026-10-16")
    (invoice,) = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()["invoices"]
    base = [line for line in invoice["lines"] if line["kind"] == "base"]
    # October has 31 days: basic for 15 days (15/31 x 29.00 = 14.03), flat for 16 (16/31 x 62.00 = 32.00)
    assert [line["amount"]["minor"] for line in base] == [1403, 3200]
    history = cli("tenants", "show", "acme", "-o", "json").json()["plans"]
    assert [h["plan"] for h in history] == ["basic", "flat"]


def test_discount_applies_in_window(cli, tmp_path):
    setup_basic(cli, tmp_path)
    cli(
        "discounts",
        "add",
        "acme",
        "--kind",
        "percent",
        "--value",
        "10",
        "--from",
        "2026-10-01",
        "--until",
        "2026-10-31",
        "--description",
        "Launch",
    )
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))
    (oct_,) = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()["invoices"]
    assert oct_["total"]["minor"] == 4400 - 440
    (nov,) = cli("invoices", "preview", "--period", "2026-11", "-o", "json").json()["invoices"]
    assert not [line for line in nov["lines"] if line["kind"] == "discount"]


def test_tax_and_zero_decimal_currency(cli, tmp_path):
    cli("db", "upgrade")
    cli("plans", "create", "--file", str(SAMPLES / "plans" / "starter-krw.toml"))
    cli("tenants", "create", "hanbit", "--currency", "KRW", "--timezone", "Asia/Seoul", "--tax-rate", "10")
    cli("tenants", "assign-plan", "hanbit", "starter-krw", "--effective", "2026-10-01")
    cli("usage", "import", events_file(tmp_path, bulk("hanbit", 2_500)))
    (invoice,) = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()["invoices"]
    # 10,000 base + 3 packages x 5,000 = 25,000; tax 10 % = 2,500
    assert invoice["subtotal"] == {"minor": 25000, "currency": "KRW", "decimal": "25000"}
    assert invoice["tax"]["minor"] == 2500 and invoice["total"]["minor"] == 27500


def test_quickstart_samples_run(cli, tmp_path):
    """The shipped samples load and price: the quickstart's data path."""
    cli("db", "upgrade")
    for plan in ("basic", "pro", "business-eur", "starter-krw"):
        cli("plans", "create", "--file", str(SAMPLES / "plans" / f"{plan}.toml"))
    cli("tenants", "create", "acme", "--tax-rate", "8.25")
    cli("tenants", "assign-plan", "acme", "basic", "--effective", "2026-10-01")
    cli("tenants", "assign-plan", "acme", "pro", "--effective", "2026-10-16")
    result = cli("usage", "import", str(SAMPLES / "events-2026-10.ndjson"), "-o", "json").json()
    assert result["rejected"] == 4100  # the other sample tenants do not exist here
    assert result["counted"] == 900
    doc = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()
    (invoice,) = doc["invoices"]
    assert {
        line["detail"].get("plan_code", line["detail"].get("segment", {}).get("plan_code"))
        for line in invoice["lines"]
        if line["kind"] == "base"
    } >= {"basic", "pro"} or len([line for line in invoice["lines"] if line["kind"] == "base"]) == 2
