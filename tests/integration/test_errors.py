"""Bad input: one line naming the field and the fix, a documented exit code, no traceback,
nothing half-written."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import BASIC, bulk, events_file, write_plan


def assert_one_line_error(result, *needles: str) -> None:
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:")
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_unknown_tenant_and_plan(cli, tmp_path):
    cli("db", "upgrade")
    assert_one_line_error(cli("tenants", "show", "nobody", expect=3), "unknown tenant 'nobody'", "tenants list")
    cli("tenants", "create", "acme")
    assert_one_line_error(cli("tenants", "assign-plan", "acme", "gold", expect=3), "unknown plan 'gold'")
    assert_one_line_error(
        cli("invoices", "preview", "--period", "2026-10", "--tenant", "nobody", expect=3), "unknown tenant"
    )


def test_bad_period(cli):
    cli("db", "upgrade")
    for bad in ("2026-13", "2026-1", "October"):
        assert_one_line_error(cli("invoices", "preview", "--period", bad, expect=3), "--period", bad)


def test_invalid_timezone_and_currency(cli):
    cli("db", "upgrade")
    assert_one_line_error(
        cli("tenants", "create", "acme", "--timezone", "Mars/Base", expect=3), "--timezone", "Mars/Base"
    )
    assert_one_line_error(cli("tenants", "create", "acme", "--currency", "XYZ", expect=3), "--currency")
    assert_one_line_error(cli("tenants", "create", "acme", "--tax-rate", "-5", expect=3), "--tax-rate")
    assert cli("tenants", "list", "-o", "json").json() == []  # nothing half-written


def test_kolkata_refused_with_hourly_buckets(cli):
    cli("db", "upgrade")
    result = cli(
        "--set", "usage.bucket_seconds=3600", "tenants", "create", "tata", "--timezone", "Asia/Kolkata", expect=3
    )
    assert_one_line_error(result, "Asia/Kolkata")
    cli("tenants", "create", "tata", "--timezone", "Asia/Kolkata")  # 300 s buckets align
    result = cli(
        "--set",
        "usage.bucket_seconds=3600",
        "usage",
        "import",
        events_file(__import__("pathlib").Path("."), bulk("tata", 5)),
        expect=4,
    )
    assert_one_line_error(result, "bucket_seconds")


def test_plan_file_reports_every_problem(cli, tmp_path):
    cli("db", "upgrade")
    bad = """
name = "broken"
currency = "USD"
base_fee = "-5.00"
inclded_units = 100
[price]
model = "graduated"
tiers = [ { up_to = 1000, unit_price = "0.1" }, { up_to = 500, unit_price = "0.2" }, { unit_price = "0.3" } ]
"""
    result = cli("plans", "create", "--file", write_plan(tmp_path, "broken", bad), expect=3)
    assert "Traceback" not in result.stderr
    assert "base_fee" in result.stderr
    assert "included_units" in result.stderr  # the typo, with a suggestion
    assert "up_to" in result.stderr
    assert cli("plans", "list", "-o", "json").json() == []


def test_plan_file_float_money_and_malformed_toml(cli, tmp_path):
    cli("db", "upgrade")
    result = cli("plans", "create", "--file", write_plan(tmp_path, "f", BASIC.replace('"29.00"', "29.00")), expect=3)
    assert "base_fee" in result.stderr and "string" in result.stderr
    assert_one_line_error(
        cli("plans", "create", "--file", write_plan(tmp_path, "m", "name = [unclosed"), expect=3), "invalid TOML"
    )
    assert_one_line_error(cli("plans", "create", "--file", str(tmp_path / "nope.toml"), expect=3), "cannot read")


def test_import_bad_lines_are_reported_and_good_ones_land(cli, tmp_path):
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    path = tmp_path / "mixed.ndjson"
    path.write_text(
        "\n".join(
            [
                '{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "units": 2, "event_id": "a"}',
                "this is not json",
                '{"tenant_id": "ghost", "ts": "2026-10-01T00:00:00Z", "event_id": "b"}',
                '{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "units": "many", "event_id": "c"}',
                '{"endpoint": "/x", "ts": "2026-10-01T00:00:00Z"}',
                '{"tenant_id": "acme", "ts": 1790000000000, "event_id": "d", "endpont": "/typo"}',
                '{"tenant_id": "acme", "ts": 1790000000000, "event_id": "e"}',
            ]
        )
        + "\n"
    )
    result = cli("usage", "import", str(path), "-o", "json")
    doc = result.json()
    assert doc["counted"] == 2 and doc["units"] == 3
    where = {r["where"].rsplit(":", 1)[1]: r["reason"] for r in doc["rejections"]}
    assert set(where) == {"2", "3", "4", "5", "6"}
    assert "JSON" in where["2"] and "unknown tenant 'ghost'" in where["3"]
    assert "units" in where["4"] and "tenant_id" in where["5"] and "endpont" in where["6"]
    table = cli("usage", "import", str(path), "--strict", expect=6)
    assert "mixed.ndjson:2" in table.stderr


def test_import_counts_each_event_once_across_imports_and_stdin(cli, tmp_path):
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    events = bulk("acme", 100, chunks=10)
    path = events_file(tmp_path, events)
    assert cli("usage", "import", path, "-o", "json").json()["counted"] == 10
    again = cli("usage", "import", path, "-o", "json").json()
    assert again["counted"] == 0 and again["duplicates"] == 10
    stdin = cli("usage", "import", "-", "-o", "json", input=Path(path).read_text()).json()
    assert stdin["counted"] == 0
    # lines without event_id get a stable id from their content: re-import counts nothing
    anonymous = events_file(tmp_path, [{"tenant_id": "acme", "ts": "2026-10-02T00:00:00Z"}] * 3, "anon.ndjson")
    assert cli("usage", "import", anonymous, "-o", "json").json()["counted"] == 3
    assert cli("usage", "import", anonymous, "-o", "json").json()["counted"] == 0


def test_schema_behind_names_the_command(tmp_path, monkeypatch):
    from tests.conftest import Cli

    monkeypatch.chdir(tmp_path)
    cli = Cli(db_url=f"sqlite:///{tmp_path / 'fresh.db'}", env={})
    assert_one_line_error(cli("tenants", "list", expect=8), "billctl db upgrade")
    cli("db", "upgrade")
    cli("tenants", "list")


def test_database_down_is_a_dependency_error(tmp_path, monkeypatch):
    from tests.conftest import Cli

    monkeypatch.chdir(tmp_path)
    cli = Cli(db_url="postgresql+psycopg://billctl:s3cret@127.0.0.1:1/billctl", env={})
    result = cli("tenants", "list", expect=5)
    assert_one_line_error(result, "database unreachable")
    assert "s3cret" not in result.stderr


def test_debug_shows_traceback(cli):
    import pytest

    cli("db", "upgrade")
    from billctl.errors import NotFound

    with pytest.raises(NotFound):
        cli("--debug", "tenants", "show", "nobody", expect=None)
