"""Issue 10, defect by defect, on SQLite and PostgreSQL: no input and no fault stops, skews or
stalls a close. (Kinds of bad input one by one: test_bad_input_table.py; any input at all:
test_cli_fuzz.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.conftest import Cli
from tests.fakestripe.billctl_harness import table_counts
from tests.helpers import (
    BASIC,
    events_file,
    plan_beyond_the_bounds,
    sql_rows,
    three_tenants,
    units_by_tenant,
    write_plan,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)
CURRENT = f"{NOW.year:04d}-{NOW.month:02d}"


def invoices(db_url: str) -> dict[str, int]:
    """'tenant period' -> total of every invoice stored."""
    query = "SELECT t.key, i.period, i.total_minor FROM invoice i JOIN tenant t ON t.id = i.tenant_id"
    return {f"{key} {period}": total for key, period, total in sql_rows(db_url, query)}


# -- 1. only finished months are billed -----------------------------------------------------------
def test_open_and_future_months_are_never_finalized_unless_asked(cli: Cli, tmp_path: Path) -> None:
    three_tenants(cli, tmp_path)
    before = table_counts(cli.db_url)
    future = cli("invoices", "finalize", "--period", "2099-01", "--yes", expect=3)
    assert "2099-01 is not over yet for any of the 3 tenants" in future.stderr
    assert "--allow-open-period" in future.stderr
    current = cli("invoices", "finalize", "--period", CURRENT, "--yes", expect=3)
    assert f"{CURRENT} is not over yet" in current.stderr
    cli("invoices", "finalize", "--period", CURRENT, "--dry-run", expect=3)
    cli("run-monthly", "--period", "2099-01", "--yes", expect=3)
    assert table_counts(cli.db_url) == before  # nothing written, not even a run record

    done = cli("invoices", "finalize", "--period", CURRENT, "--yes", "--allow-open-period", "-o", "json").json()
    assert done["outcomes"] == {"finalized": 3}
    assert set(invoices(cli.db_url)) == {f"{k} {CURRENT}" for k in ("acme", "globex", "initech")}
    trail = cli("audit", "list", "--action", "invoice.finalize", "-o", "json").json()
    assert len(trail) == 3 and all(a["reason"].startswith("--allow-open-period: period not over yet") for a in trail)


def test_the_rule_is_per_tenant_time_zone(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 2026-11-01 02:00 UTC, October is over in UTC and in Tokyo, not yet in Los Angeles."""
    three_tenants(cli, tmp_path, {"globex": "Asia/Tokyo", "initech": "America/Los_Angeles"})
    monkeypatch.setattr("billctl.services.context.App.now", lambda self: datetime(2026, 11, 1, 2, tzinfo=UTC))
    doc = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    outcome = {d["tenant"]: d["status"] for d in doc["invoices"]}
    assert outcome == {"acme": "finalized", "globex": "finalized", "initech": "not over"}
    (late,) = [d for d in doc["invoices"] if d["tenant"] == "initech"]
    assert late["reason"] == "period not over yet in America/Los_Angeles (ends 2026-11-01 07:00Z)"
    assert set(invoices(cli.db_url)) == {"acme 2026-10", "globex 2026-10"}
    # run-monthly applies the same rule (the stream is not used here)
    cli.env["BILLCTL_MONTHLY_DRAIN_STREAM"] = "false"
    report = cli("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    assert report["not_over"] == [{"tenant": "initech", "reason": late["reason"]}]
    monkeypatch.setattr("billctl.services.context.App.now", lambda self: datetime(2026, 11, 1, 8, tzinfo=UTC))
    assert cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()["outcomes"] == {
        "already finalized": 2,
        "finalized": 1,
    }


def test_recompute_does_not_call_an_open_month_missing(cli: Cli, tmp_path: Path) -> None:
    three_tenants(cli, tmp_path)
    doc = cli("invoices", "recompute", "--period", CURRENT, "--exit-code", "-o", "json").json()
    assert doc["not_invoiced"] == []  # finalize refuses them: nothing is missing
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli("tenants", "create", "late", "--name", "Late")
    cli("tenants", "assign-plan", "late", "basic", "--effective", "2026-10-01")
    missing = cli("invoices", "recompute", "--period", "2026-10", "--exit-code", "-o", "json", expect=10).json()
    assert missing["not_invoiced"] == ["late"]  # a finished month without its invoice is still found


# -- 2. event timestamps bounded at both ends -----------------------------------------------------
def test_import_bounds_timestamps_at_both_ends_and_backfills_last_month(cli: Cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    lines = [
        {"tenant_id": "acme", "ts": "2099-01-01T00:00:00Z", "event_id": "future"},
        {"tenant_id": "acme", "ts": "0001-01-01T00:00:00Z", "event_id": "year-one"},
        {"tenant_id": "acme", "ts": "1969-07-20T20:17:00Z", "event_id": "moon"},
        {"tenant_id": "acme", "ts": 1, "event_id": "epoch"},
        {"tenant_id": "acme", "ts": "2026-10-15T12:00:00Z", "event_id": "backfill", "units": 7},
    ]
    doc = cli("usage", "import", events_file(tmp_path, lines), "-o", "json").json()
    where = {r["where"].rsplit(":", 1)[1]: r["reason"] for r in doc["rejections"]}
    assert set(where) == {"1", "2", "3", "4"} and doc["counted"] == 1
    assert "usage.max_future_seconds" in where["1"]
    assert all(where[n].startswith("ts ") and "usage.max_past_days" in where[n] for n in ("2", "3", "4"))
    assert units_by_tenant(cli.db_url) == {"acme": 7}
    # the window is a setting: a narrower past refuses last month too
    narrow = cli("--set", "usage.max_past_days=1", "usage", "import", events_file(tmp_path, lines[4:], "b.ndjson"))
    assert "usage.max_past_days = 1" in narrow.stderr


def test_access_log_import_bounds_start_time(cli: Cli, tmp_path: Path) -> None:
    import json

    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    rows = [
        {"start_time": t, "path": "/v1/x", "response_code": 200, "request_id": f"r{i}", "x-tenant-id": "acme"}
        for i, t in enumerate(["2099-01-01T00:00:00.000Z", "1900-01-01T00:00:00.000Z", "2026-10-20T10:00:00.000Z"])
    ]
    path = tmp_path / "access.log"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = cli("usage", "import", str(path), "--format", "envoy", "-o", "json").json()
    reasons = [r["reason"] for r in doc["rejections"]]
    assert doc["counted"] == 1 and len(reasons) == 2 and all(r.startswith("start_time ") for r in reasons)


def test_stream_dead_letters_events_out_of_the_window(scli: Cli, stream: str, redis_url: str) -> None:
    scli("tenants", "create", "acme")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    now = int(time.time() * 1000)
    r.xadd(stream, {"tenant_id": "acme", "ts": now, "event_id": "ok", "units": 3, "endpoint": "/v1/x"})
    r.xadd(stream, {"tenant_id": "acme", "ts": 1, "event_id": "epoch", "units": 1, "endpoint": "/v1/x"})
    r.xadd(stream, {"tenant_id": "acme", "ts": "0001-01-01T00:00:00Z", "event_id": "year-one"})
    r.xadd(stream, {"tenant_id": "acme", "ts": now + 86_400_000, "event_id": "tomorrow", "units": 1, "endpoint": "/"})
    report = scli("usage", "aggregate", "--drain", "-o", "json").json()
    assert report["counted"] == 1 and report["dead_lettered"] == 3
    assert units_by_tenant(scli.db_url) == {"acme": 3}
    reasons = sorted(fields["_reason"] for _, fields in r.xrange(f"{stream}:dead"))
    assert [x.split(" ")[0] for x in reasons] == ["ts", "ts", "ts"]
    assert sum("usage.max_past_days" in x for x in reasons) == 2 and any("max_future" in x for x in reasons)
    r.close()


# -- 3. one bad plan never stops everyone's close -------------------------------------------------
def _usage_beyond_a_year(db_url: str, tenant: str, units: int) -> None:
    """A usage bucket of ``units`` in October, written straight into the database (no event carries
    more than 10^9 units: this is years of traffic in one month)."""
    from billctl.db.models import Tenant, UsageBucket

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        tenant_id = conn.execute(sa.select(Tenant.id).where(Tenant.key == tenant)).scalar_one()
        start = int(datetime(2026, 10, 20, tzinfo=UTC).timestamp())
        conn.execute(
            sa.insert(UsageBucket.__table__).values(
                tenant_id=tenant_id, bucket_start=start, endpoint="/v1/x", units=units, events=1
            )
        )
    engine.dispose()


def test_amounts_beyond_the_bounds_are_refused_where_they_enter(cli: Cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    huge = BASIC.replace('"basic"', '"huge"').replace('"29.00"', '"1e20"')
    refused = cli("plans", "create", "--file", write_plan(tmp_path, "h", huge), expect=3)
    assert "base_fee" in refused.stderr and "limit" in refused.stderr
    assert cli("plans", "list", "-o", "json").json() == []


def test_one_tenants_bad_data_fails_that_tenant_only(cli: Cli, tmp_path: Path) -> None:
    three_tenants(cli, tmp_path)
    plan_beyond_the_bounds(cli.db_url, "globex")  # PostgreSQL said "bigint out of range", SQLite OverflowError
    dear = BASIC.replace('"basic"', '"dear"').replace('"0.001"', '"10000"')  # the highest unit price allowed
    cli("plans", "create", "--file", write_plan(tmp_path, "dear", dear))
    cli("tenants", "assign-plan", "initech", "dear", "--effective", "2026-10-01")
    _usage_beyond_a_year(cli.db_url, "initech", 10**16)
    result = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    reasons = {d["tenant"]: d.get("reason") for d in result["invoices"]}
    assert reasons["globex"].startswith("failed: plan 'huge' v1 does not pass validation: base_fee")
    assert "does not fit the invoice storage" in reasons["initech"]
    assert set(invoices(cli.db_url)) == {"acme 2026-10"}  # the others are finalized
    preview = cli("invoices", "preview", "--period", "2026-10", "-o", "json", expect=6).json()
    status = {d["tenant"]: d["status"] for d in preview["invoices"]}
    assert status == {"acme": "already finalized", "globex": "failed", "initech": "failed"}

    cli.env["BILLCTL_MONTHLY_DRAIN_STREAM"] = "false"
    report = cli("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    assert [(f["step"], f["tenant"]) for f in report["failed"]] == [("finalize", "globex"), ("finalize", "initech")]
    table = cli("run-monthly", "--period", "2026-10", "--yes", expect=6)
    assert "failed (finalize): globex: failed: plan 'huge' v1" in table.stderr
    cli("tenants", "assign-plan", "globex", "basic", "--effective", "2026-10-01")  # fixed: the next run bills it
    again = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    assert again["outcomes"] == {"already finalized": 1, "finalized": 1, "failed": 1}


def test_a_database_error_for_one_tenant_is_still_that_tenants_only(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under the bounds: were an amount to slip past them, the database's own refusal
    (SQLite: OverflowError; PostgreSQL: bigint out of range) fails that tenant, not the close."""
    three_tenants(cli, tmp_path)
    dear = BASIC.replace('"basic"', '"dear"').replace('"0.001"', '"10000"')
    cli("plans", "create", "--file", write_plan(tmp_path, "dear", dear))
    cli("tenants", "assign-plan", "globex", "dear", "--effective", "2026-10-01")
    _usage_beyond_a_year(cli.db_url, "globex", 10**16)
    monkeypatch.setattr("billctl.services.invoices.pricing.check_storable", lambda draft, tenant: None)
    result = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    (failed,) = [d for d in result["invoices"] if d["status"] == "failed"]
    assert failed["tenant"] == "globex"
    assert "OverflowError" in failed["reason"] or "out of range" in failed["reason"]
    assert set(invoices(cli.db_url)) == {"acme 2026-10", "initech 2026-10"}


# -- 4. no tracebacks: user text is text, never markup ----------------------------------------------
def test_markup_in_stored_text_prints_as_text(cli: Cli, tmp_path: Path) -> None:
    three_tenants(cli, tmp_path)
    cli("tenants", "update", "acme", "--name", "[/x] [bold]Acme")
    cli("discounts", "add", "acme", "--kind", "percent", "--value", "5", "--from", "2026-10-01", "--description", "[/]")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli("invoices", "void", "INV-2026-10-000001", "--reason", "[/red] wrong", "--yes")
    shown = cli("invoices", "show", "INV-2026-10-000001")
    assert "[/red] wrong" in shown.stderr and "[/]" in shown.stdout
    assert "[/x] [bold]Acme" in cli("tenants", "show", "acme").stdout
    bad = cli("usage", "import", events_file(tmp_path, [{"tenant_id": "[/x]", "ts": 1_790_000_000_000}], "m.ndjson"))
    assert "unknown tenant '[/x]'" in bad.stderr


def test_postgres_read_only_is_named(cli: Cli) -> None:
    if not cli.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's read-only transactions (SQLite's mode=ro is in the table test)")
    cli("db", "upgrade")
    read_only = Cli(db_url=cli.db_url + "?options=-c%20default_transaction_read_only%3Don", env={})
    result = read_only("tenants", "create", "acme", expect=5)
    assert "is read-only" in result.stderr and "not a read-only standby" in result.stderr
    assert "is the server running" not in result.stderr


# -- 5. usage import never drops good lines -------------------------------------------------------
def test_import_keeps_every_good_line_whatever_the_bad_ones(cli: Cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    good = b'{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "units": 2, "event_id": "g%d"}'
    lines = [
        good % 1,
        b'{"tenant_id": "acme", "ts": "2026-10-01T00:00:00Z", "event_id": "caf\xe9"}',  # Latin-1, not UTF-8
        good % 2,
        b'{"tenant_id": "acme", "ts": "9999-12-31T23:59:59-01:00", "event_id": "far"}',  # beyond datetime in UTC
        b'{"tenant_id": "acme", "ts": "0001-01-01T00:00:00+01:00", "event_id": "before"}',  # before datetime.min
        b"\x00\x01\x02 binary",
        good % 3,
    ]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    doc = cli("usage", "import", str(path), "-o", "json").json()
    assert doc["counted"] == 3 and doc["units"] == 6
    where = {r["where"].rsplit(":", 1)[1]: r["reason"] for r in doc["rejections"]}
    assert set(where) == {"2", "4", "5", "6"}
    assert "not UTF-8" in where["2"] and where["4"].startswith("ts") and where["5"].startswith("ts")
    stdin = cli("usage", "import", "-", "-o", "json", input=path.read_bytes()).json()
    assert stdin["counted"] == 0 and stdin["duplicates"] == 3 and stdin["rejected"] == 4


# -- 6. caps ---------------------------------------------------------------------------------------
def test_a_50_mb_plan_file_is_refused_up_front(cli: Cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    path = tmp_path / "huge.toml"
    with path.open("w") as handle:
        handle.write(BASIC)
        for i in range(2_500_000):
            handle.write(f"k{i} = 1\n")
    started = time.monotonic()
    result = cli("plans", "create", "--file", str(path), expect=3)
    assert time.monotonic() - started < 5 and len(result.stderr) < 500
    assert "the limit is 1,048,576" in result.stderr


def test_problems_are_capped(cli: Cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    body = "".join(f"k{i} = 1\n" for i in range(5000)) + BASIC  # unknown top-level keys
    result = cli("plans", "create", "--file", write_plan(tmp_path, "many", body), expect=3)
    assert "5,000 problem(s)" in result.stderr and "… and 4,980 more" in result.stderr
    assert len(result.stderr.splitlines()) == 22


# -- 10. smaller ones -----------------------------------------------------------------------------
def test_sigterm_during_start_up_exits_143(tmp_path: Path) -> None:
    """A SIGTERM while billctl is still importing its modules (about 0.6 s of start-up) ends it
    with the documented 143, not by the signal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")}
    env["BILLCTL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "billctl", "tenants", "list"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # -X importtime reports each module once it is imported
        if line.split("|")[-1].strip() == "billctl.cli":
            break
    proc.send_signal(signal.SIGTERM)  # billctl.cli is in, billctl.cli.app (sqlalchemy, typer, ...) is not
    proc.stderr.read()
    assert proc.wait(timeout=30) == 143


def test_discount_from_defaults_to_today_in_the_tenants_zone(cli: Cli, tmp_path: Path) -> None:
    three_tenants(cli, tmp_path, {"acme": "Pacific/Kiritimati"})
    out = cli("discounts", "add", "acme", "--kind", "percent", "--value", "10", expect=None)
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    assert out.exit_code == 0 and f"from {today}" in out.stderr
    (discount,) = cli("discounts", "list", "acme", "-o", "json").json()
    assert discount["from"] == today and discount["until"] is None


# -- the documentation ------------------------------------------------------------------------------
def test_documented_exit_codes_event_rules_and_bounds_match_the_code() -> None:
    import re

    from billctl.config import BY_KEY
    from billctl.core import bounds
    from billctl.core.events import MAX_FIELD, MAX_UNITS
    from billctl.errors import ExitCode
    from billctl.files import MAX_FILE_BYTES

    reference = ROOT / "docs" / "reference"
    table = (reference / "exit-codes.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert documented == {int(code) for code in ExitCode}
    assert "bad input never gives 1" in table and "a read-only database" in table  # meanings over two lines
    events = " ".join((reference / "events.md").read_text().split())
    assert f"`usage.max_past_days` ({BY_KEY['usage.max_past_days'].default})" in events
    assert f"`usage.max_future_seconds` ({BY_KEY['usage.max_future_seconds'].default})" in events
    assert f"1 to {MAX_UNITS:,}" in events and f"at most {MAX_FIELD} characters" in events
    limits = " ".join((reference / "bounds.md").read_text().split())
    assert f"at most 10^{len(str(bounds.MAX_AMOUNT_MINOR)) - 1} minor units" in limits
    assert f"at most 10^{len(str(bounds.MAX_UNIT_PRICE_MINOR)) - 1} minor units" in limits
    assert f"at most {bounds.MAX_DECIMALS} decimal places" in limits
    assert f"at most {bounds.MAX_TIERS} tiers" in limits and f"{bounds.MAX_WEIGHT:,}" in limits
    assert MAX_FILE_BYTES == 1024 * 1024 and "up to 1 MiB" in limits
