"""run-monthly end to end against the real database (SQLite and PostgreSQL), the real Redis and
FakeStripe over HTTP: the plan (dry run writes nothing anywhere), the close and its re-run,
guardrails and release, the lock, SIGTERM, two runs at once, and SIGKILL anywhere."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.conftest import Cli
from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    assert_exactly_once,
    setup_tenants,
    stripe_env,
    stripe_invoices_for,
    table_counts,
)

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ["acme", "globex", "initech"]
UNITS = {"acme": 25_000, "globex": 8_000, "initech": 40_000}  # imported from a file
STREAM_UNITS = {"acme": 1_000, "globex": 3_000, "initech": 0}  # still in the stream at close time


def expected_total_minor(units: int) -> int:
    """The basic plan, computed independently: 29.00 + 0.001 per unit above 10,000, no tax."""
    amount = Decimal("29.00") + max(0, units - 10_000) * Decimal("0.001")
    return int((amount * 100).to_integral_value())


@pytest.fixture
def month(scli: Cli, tmp_path: Path, fake: FakeStripe, stream: str, redis_url: str) -> Cli:
    """Three tenants on `basic` with October usage from a file and more of it still in the stream."""
    setup_tenants(scli, tmp_path, TENANTS, units=0, finalize=False)
    from tests.helpers import bulk, events_file

    events = [e for key in TENANTS for e in bulk(key, UNITS[key], prefix="file", chunks=5)]
    scli("usage", "import", events_file(tmp_path, events))
    r = redis.Redis.from_url(redis_url)
    ts = int(datetime(2026, 10, 20, tzinfo=UTC).timestamp() * 1000)
    for key, units in STREAM_UNITS.items():
        if units:
            r.xadd(
                stream, {"tenant_id": key, "endpoint": "/v1/search", "ts": ts, "units": units, "event_id": f"s-{key}"}
            )
    r.close()
    scli.env.update(stripe_env(fake))
    return scli


def totals(db_url: str) -> dict[str, tuple[str, int, str]]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.key, i.number, i.total_minor, i.status FROM invoice i JOIN tenant t ON t.id = i.tenant_id "
                "WHERE i.period = '2026-10' AND i.status <> 'void'"
            )
        ).all()
    engine.dispose()
    return {key: (number, total, status) for key, number, total, status in rows}


def snapshot(db_url: str, redis_url: str, stream: str, fake: FakeStripe) -> tuple:
    r = redis.Redis.from_url(redis_url)
    keys = sorted(r.scan_iter(match=f"{stream}*"))
    state = tuple((k, r.type(k), r.xlen(k) if r.type(k) == b"stream" else None) for k in keys)
    groups = r.xinfo_groups(stream) if r.exists(stream) else []
    r.close()
    return (table_counts(db_url), state, str(groups), len(fake.customers), len(fake.invoices), len(fake.invoiceitems))


def test_dry_run_prints_the_plan_and_writes_nothing(month: Cli, fake: FakeStripe, redis_url: str, stream: str):
    before = snapshot(month.db_url, redis_url, stream, fake)
    result = month("run-monthly", "--period", "2026-10", "--dry-run", "-o", "json")
    plan = result.json()
    assert plan["dry_run"] is True and plan["exit_code"] == 0
    assert {i["tenant"]: i["outcome"] for i in plan["invoices"]} == dict.fromkeys(TENANTS, "would finalize")
    assert {i["tenant"]: i["total"]["minor"] for i in plan["invoices"]} == {
        k: expected_total_minor(UNITS[k]) for k in TENANTS
    }  # the stream backlog is not in these amounts, and the plan says so
    assert any("not aggregated yet" in n for n in plan["notices"])
    assert plan["usage"]["counted"] == 2
    assert sorted(c["tenant"] for c in plan["customers"]) == TENANTS
    assert sorted(p["tenant"] for p in plan["pushed"]) == TENANTS
    assert plan["totals"]["USD"]["invoices"] == 3
    assert snapshot(month.db_url, redis_url, stream, fake) == before
    assert [r.method for r in fake.request_log if r.method != "GET"] == []
    table = month("run-monthly", "--period", "2026-10", "--dry-run")
    assert "DRY RUN" in table.stdout and "would finalize" in table.stdout


def test_close_end_to_end_then_rerun_changes_nothing(month: Cli, fake: FakeStripe, redis_url: str, stream: str):
    refused = month("run-monthly", "--period", "2026-10", expect=3)  # no terminal: needs --yes
    assert "--yes" in refused.stderr
    report = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert report["exit_code"] == 0 and not report["held"] and not report["failed"]
    assert [s["step"] for s in report["steps"]] == [
        "usage",
        "finalize",
        "guardrails",
        "credits-expiry",
        "customers",
        "push",
        "status",
        "credits-alerts",
    ]
    assert all(s["state"] == "done" for s in report["steps"])
    got = totals(month.db_url)
    for key in TENANTS:
        number, total, status = got[key]
        assert total == expected_total_minor(UNITS[key] + STREAM_UNITS[key])
        assert_exactly_once(fake, month.db_url, number, key)
    posts = sum(1 for r in fake.request_log if r.method == "POST")
    again = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert again["exit_code"] == 0
    assert {i["outcome"] for i in again["invoices"]} == {"already finalized"}
    assert sum(1 for r in fake.request_log if r.method == "POST") == posts  # nothing sent twice
    assert totals(month.db_url) == got
    audit = month("audit", "list", "--action", "invoice.finalize", "-o", "json").json()
    assert len(audit) == 3 and all(a["actor"] == "tester" for a in audit)
    engine = sa.create_engine(month.db_url)
    with engine.connect() as conn:
        steps = conn.execute(sa.text("SELECT COUNT(DISTINCT run_id), COUNT(*) FROM run_step")).one()
        locks = conn.execute(sa.text("SELECT COUNT(*) FROM run_lock")).scalar()
    engine.dispose()
    assert steps == (2, 16) and locks == 0  # two runs checkpointed, the lock released


def test_a_retry_of_the_same_job_takes_the_lock_over_at_once(month: Cli, fake: FakeStripe):
    engine = sa.create_engine(month.db_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:  # the first pod of the Job was OOM-killed a moment ago, on another node
        conn.execute(
            sa.text(
                "INSERT INTO run_lock (name, holder, host, pid, grp, acquired_at, heartbeat_at) "
                "VALUES ('run-monthly', 'attempt-1', 'pod-abc', 1, 'billctl-monthly-29100000', :t, :t)"
            ),
            {"t": now},
        )
    engine.dispose()
    month.env["BILLCTL_MONTHLY_LOCK_GROUP"] = "billctl-monthly-29200000"  # next month's Job: must wait
    month("run-monthly", "--period", "2026-10", "--yes", expect=7)
    month.env["BILLCTL_MONTHLY_LOCK_GROUP"] = "billctl-monthly-29100000"  # a retry of the same Job
    report = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert any("an earlier attempt of the same group" in n for n in report["notices"])


def test_guardrails_hold_and_release(month: Cli, fake: FakeStripe):
    month.env["BILLCTL_MONTHLY_HOLD_ABOVE"] = "USD=40"  # acme 44.00+ and initech 59.00 are above
    result = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6)
    report = result.json()
    held = {h["tenant"]: h for h in report["held"]}
    assert sorted(held) == ["acme", "initech"]
    assert "above the limit USD 40.00" in held["acme"]["reason"]
    got = totals(month.db_url)
    assert got["acme"][2] == "held" and got["globex"][2] == "finalized"
    assert stripe_invoices_for(fake, got["acme"][0]) == []  # held back from Stripe
    assert len(stripe_invoices_for(fake, got["globex"][0])) == 1
    # a re-run keeps them held and says so again
    again = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    assert sorted(h["tenant"] for h in again["held"]) == ["acme", "initech"]

    month("invoices", "release", got["acme"][0], expect=3)  # needs --yes without a terminal
    released = month("invoices", "release", got["acme"][0], "--yes", "--reason", "customer confirmed", "-o", "json")
    assert released.json()["pushed"]["action"] == "pushed"
    assert_exactly_once(fake, month.db_url, got["acme"][0], "acme")
    month("invoices", "release", got["acme"][0], "--yes", expect=9)  # not held any more
    # released invoices are never held again
    third = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    assert [h["tenant"] for h in third["held"]] == ["initech"]
    # a held invoice can also be voided (the usage was a stolen key's); it never reaches Stripe
    month("invoices", "void", got["initech"][0], "--reason", "stolen API key", "--yes")
    month("stripe", "push", "--period", "2026-10")
    assert stripe_invoices_for(fake, got["initech"][0]) == []
    trail = month("audit", "list", "--object", got["acme"][0], "-o", "json").json()
    actions = [a["action"] for a in trail]
    assert "invoice.hold" in actions and "invoice.release" in actions
    assert [a for a in trail if a["action"] == "invoice.release"][0]["reason"] == "customer confirmed"


def test_hold_on_a_jump_against_last_month_and_zero_usage_report(month: Cli, fake: FakeStripe, tmp_path: Path):
    from tests.helpers import bulk, events_file

    month.env["BILLCTL_MONTHLY_DRAIN_STREAM"] = "false"
    month("run-monthly", "--period", "2026-10", "--yes")
    # November: acme's usage explodes (a stolen key), initech stops completely
    month("usage", "import", events_file(tmp_path, bulk("acme", 2_000_000, day="2026-11-10", prefix="nov"), "n.ndjson"))
    month("usage", "import", events_file(tmp_path, bulk("globex", 8_000, day="2026-11-10", prefix="nov"), "g.ndjson"))
    before = table_counts(month.db_url)
    early = month("run-monthly", "--period", "2026-11", "--yes", "-o", "json", expect=3)  # it is 2026-11
    assert "2026-11 is not over yet for any of the 3 tenants" in early.stderr and "--allow-open-period" in early.stderr
    assert early.stdout == "" and table_counts(month.db_url) == before  # refused before anything was done
    report = month("run-monthly", "--period", "2026-11", "--yes", "--allow-open-period", "-o", "json", expect=6).json()
    assert [h["tenant"] for h in report["held"]] == ["acme"]
    assert "x the previous invoice" in report["held"][0]["reason"]
    assert report["zero_usage"] == [{"tenant": "initech", "units": 0, "previous_units": 40_000}]


def test_no_stripe_key_skips_stripe_with_a_notice(month: Cli, fake: FakeStripe):
    for name in list(month.env):
        if "STRIPE" in name:
            del month.env[name]
    result = month("run-monthly", "--period", "2026-10", "--yes")
    assert "Stripe skipped: no API key configured" in result.stderr
    assert fake.request_log == [] and len(totals(month.db_url)) == 3


def test_lock_held_by_a_live_run_then_taken_over_when_stale(month: Cli, fake: FakeStripe):
    engine = sa.create_engine(month.db_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO run_lock (name, holder, host, pid, grp, acquired_at, heartbeat_at) "
                "VALUES ('run-monthly', 'other-run', 'other-pod', 1, '', :t, :t)"
            ),
            {"t": now},
        )
    result = month("run-monthly", "--period", "2026-10", "--yes", expect=7)
    assert "another run holds the lock: run other-run on other-pod" in result.stderr
    assert totals(month.db_url) == {}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE run_lock SET heartbeat_at = :t"), {"t": now - timedelta(hours=1)})
    engine.dispose()
    report = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert any("took over the lock of run other-run" in n for n in report["notices"])


# -- subprocess runs: SIGTERM, two at once, SIGKILL anywhere ---------------------------------------
def _env(cli: Cli, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")},
        **cli.env,
        "BILLCTL_DATABASE_URL": cli.db_url,
        "BILLCTL_ACTOR": "cronjob",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _spawn(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "billctl", "run-monthly", "--period", "2026-10", "--yes", "-o", "json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _pushed(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM invoice WHERE stripe_invoice_id IS NOT NULL")).scalar()
    engine.dispose()
    return int(n or 0)


def test_sigterm_stops_after_the_item_in_progress_and_a_rerun_completes(month: Cli, fake: FakeStripe):
    fake.inject(method="POST", path_regex=r"^/v1/invoices$", delay=0.4, times=10)  # slow invoice creation
    proc = _spawn(_env(month))
    _wait_for(lambda: _pushed(month.db_url) >= 1 or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    report = __import__("json").loads(out)
    assert report["interrupted"] is True and report["steps"][-1]["state"] == "interrupted"
    assert _pushed(month.db_url) < 3
    fake.clear_faults()
    month("run-monthly", "--period", "2026-10", "--yes")
    for key, (number, total, _) in totals(month.db_url).items():
        assert total == expected_total_minor(UNITS[key] + STREAM_UNITS[key])
        assert_exactly_once(fake, month.db_url, number, key)


def test_two_runs_at_once_one_works_the_other_exits_locked(month: Cli, fake: FakeStripe):
    fake.inject(method="POST", path_regex=r"^/v1/invoices$", delay=3, times=10)  # the first run is slow
    first = _spawn(_env(month))
    engine = sa.create_engine(month.db_url)

    def locked() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text("SELECT COUNT(*) FROM run_lock")).scalar()) or first.poll() is not None

    _wait_for(locked)
    engine.dispose()
    second = _spawn(_env(month))
    _, err = second.communicate(timeout=60)
    assert second.returncode == 7, err
    assert "another run holds the lock" in err
    first.communicate(timeout=120)
    assert first.returncode == 0
    for key, (number, _, _) in totals(month.db_url).items():
        assert_exactly_once(fake, month.db_url, number, key)


def test_sigkill_anywhere_then_rerun_gives_exactly_one_invoice_everywhere(month: Cli, fake: FakeStripe):
    rng = random.Random(20261101)
    fake.random_faults(0.0)  # no errors; only latency, so kills land inside every step
    for _ in range(40):
        fake.inject(path_regex=".*", delay=rng.uniform(0.02, 0.15))
    env = _env(month)
    kills = 0
    for _attempt in range(8):
        proc = _spawn(env)
        time.sleep(rng.uniform(0.4, 2.5))
        if proc.poll() is not None:
            proc.communicate()
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
    fake.clear_faults()
    final = subprocess.run(
        [sys.executable, "-m", "billctl", "run-monthly", "--period", "2026-10", "--yes", "-o", "json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 1
    got = totals(month.db_url)
    assert sorted(got) == TENANTS
    for key, (number, total, _) in got.items():
        assert total == expected_total_minor(UNITS[key] + STREAM_UNITS[key])
        assert_exactly_once(fake, month.db_url, number, key)


def test_metrics_go_to_a_pushgateway_when_configured(month: Cli, fake: FakeStripe):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[tuple[str, str, str]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    month.env["BILLCTL_MONTHLY_PUSHGATEWAY_URL"] = f"http://127.0.0.1:{server.server_port}"
    month("run-monthly", "--period", "2026-10", "--yes")
    server.shutdown()
    ((method, path, body),) = received
    assert method == "PUT" and path == "/metrics/job/billctl_run_monthly/period/2026-10"
    assert "billctl_run_monthly_exit_code 0" in body
    assert 'billctl_run_monthly_invoices{state="finalized"} 3' in body
    assert 'billctl_run_monthly_step_seconds{step="push"}' in body
    assert "billctl_run_monthly_last_success_timestamp" in body
    # a Pushgateway that is down only warns: metrics never fail a close
    month.env["BILLCTL_MONTHLY_PUSHGATEWAY_URL"] = "http://127.0.0.1:1"
    result = month("run-monthly", "--period", "2026-10", "--yes")
    assert "could not push metrics" in result.stderr


# ---------------------------------------------------------------- prepaid credits at the close (issue 13)


def _ledger(db_url: str) -> list[tuple]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key, kind, amount_minor FROM credit_ledger ORDER BY id")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_close_writes_off_expired_credits_and_lists_credit_alerts(
    month: Cli, fake: FakeStripe, redis_url: str, stream: str
):
    """A grant that expired mid-period is written off by the credits-expiry step (the dry run plans
    it and writes nothing); tenants low on credits are listed by the credits-alerts step without
    changing the exit code; a re-run writes nothing more."""
    month.env["BILLCTL_CREDITS_ALERT_BELOW"] = "USD=50"
    month(
        "credits",
        "grant",
        "acme",
        "--amount",
        "5",
        "--kind",
        "promotional",
        "--reason",
        "trial",
        "--effective",
        "2026-10-01",
        "--expires",
        "2026-10-15",
    )
    month("credits", "grant", "globex", "--amount", "100", "--kind", "purchased", "--reason", "top-up")
    granted = _ledger(month.db_url)
    before = snapshot(month.db_url, redis_url, stream, fake)

    plan = month("run-monthly", "--period", "2026-10", "--dry-run", "-o", "json").json()
    steps = {s["step"]: s for s in plan["steps"]}
    assert steps["credits-expiry"]["state"] == "done" and steps["credits-expiry"]["expired"] == 1
    assert steps["credits-alerts"]["alerts"] == 1
    assert [(x["tenant"], x["grant"], x["amount"]["minor"], x["state"]) for x in plan["credits_expired"]] == [
        ("acme", 1, 500, "written off")
    ]
    assert [a["tenant"] for a in plan["credit_alerts"]] == ["acme"]  # 5.00 < 50; globex has 100.00
    assert snapshot(month.db_url, redis_url, stream, fake) == before
    assert _ledger(month.db_url) == granted

    report = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert report["exit_code"] == 0  # alerts are reported, not a failure
    assert report["credits_expired"] == plan["credits_expired"]
    assert [a["tenant"] for a in report["credit_alerts"]] == ["acme"]
    assert report["credit_alerts"][0]["available"]["minor"] == 0 and report["credit_alerts"][0]["reasons"]
    assert _ledger(month.db_url) == [*granted, ("expiry:1:1", "expiry", -500)]
    balance = month("credits", "balance", "acme", "-o", "json").json()
    assert balance[0]["balance"]["minor"] == 0

    again = month("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert again["exit_code"] == 0 and again["credits_expired"] == []
    assert _ledger(month.db_url) == [*granted, ("expiry:1:1", "expiry", -500)]
    table = month("run-monthly", "--period", "2026-10", "--yes")
    assert "low on prepaid credits" in table.stdout and "acme" in table.stdout


def test_entries_a_killed_close_left_pending_are_billed_by_the_next_run(month: Cli, stream: str, redis_url: str):
    """A run killed in the middle of its drain leaves what it had read pending in the group; the next
    run takes those entries back before it finalizes (not after stream.claim_idle_ms), so the
    month's invoices include them."""
    from billctl.services.monthly.run import MONTHLY_CONSUMER

    r = redis.Redis.from_url(redis_url)
    r.xgroup_create(stream, "billctl", id="0", mkstream=True)
    read = r.xreadgroup("billctl", MONTHLY_CONSUMER, {stream: ">"}, count=100)  # read, never acknowledged
    assert sum(len(entries) for _, entries in read) == 2
    r.close()
    month("run-monthly", "--period", "2026-10", "--yes")
    got = totals(month.db_url)
    for key, (_, total, _) in got.items():
        assert total == expected_total_minor(UNITS[key] + STREAM_UNITS[key]), key
