"""Crash test (issue 13; DESIGN.md invariants 4 and 14): `billctl invoices finalize` for tenants with
prepaid credits runs as a subprocess killed with SIGKILL at random moments, then re-run to the end;
the invoices, their lines and the credit ledger are the same as an uninterrupted run's (built the
same way in a database of its own): no invoice without its draws, no draw without its invoice, no
draw twice. On SQLite and on PostgreSQL (the uninterrupted run on SQLite: the same code gives the
same books on both)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from billctl.config import load_config
from billctl.services.context import App
from billctl.services.credits import GrantRequest, grant_credits
from billctl.services.tenants import TenantFields, assign_plan, create_tenant
from tests.conftest import Cli
from tests.helpers import BASIC, bulk, events_file, sql_rows, write_plan

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 240  # three finalize transactions (invoices.CHUNK = 100)


def build(cli: Cli, tmp_path: Path) -> None:
    """TENANTS tenants on `basic` (tax 10 %), each with a promotional and a purchased grant of its own
    size and its own usage: some invoices covered in full, some in part."""
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    app = App(config=load_config(None, {"database.url": cli.db_url}, env={}), actor="tester")
    events = []
    try:
        for i in range(TENANTS):
            key = f"t{i:03d}"
            create_tenant(app, key, TenantFields(tax_rate="10"))
            assign_plan(app, key, "basic", "2026-09-01")
            for amount, kind in ((f"{5 + i % 7}", "promotional"), (f"{3 + i % 40}", "purchased")):
                grant_credits(app, key, GrantRequest(amount=amount, kind=kind, reason="r", effective="2026-10-01"))
            events += bulk(key, 10_000 + 1_000 * (i % 30))
    finally:
        app.dispose()
    cli("usage", "import", events_file(tmp_path, events))


def books(db_url: str) -> dict[str, list[tuple]]:
    invoices = sql_rows(
        db_url,
        "SELECT i.number, t.key, i.status, i.subtotal_minor, i.tax_minor, i.total_minor, i.fingerprint "
        "FROM invoice i JOIN tenant t ON t.id = i.tenant_id ORDER BY i.number",
    )
    lines = sql_rows(
        db_url,
        "SELECT i.number, l.position, l.kind, l.amount_minor FROM invoice_line l "
        "JOIN invoice i ON i.id = l.invoice_id ORDER BY i.number, l.position",
    )
    ledger = sql_rows(
        db_url,
        # not the entry keys: they hold the invoice's row id, which PostgreSQL does not give back on a rollback
        "SELECT t.key, e.grant_id, e.kind, e.amount_minor, i.number, e.source FROM credit_ledger e "
        "JOIN tenant t ON t.id = e.tenant_id LEFT JOIN invoice i ON i.id = e.invoice_id "
        "ORDER BY t.key, e.grant_id, e.kind, i.number",
    )
    return {"invoices": invoices, "lines": lines, "ledger": ledger}


def env_for(cli: Cli) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")},
        "BILLCTL_DATABASE_URL": cli.db_url,
        "BILLCTL_ACTOR": "tester",
        "NO_COLOR": "1",
    }


def test_sigkill_during_finalize_then_rerun_gives_the_same_invoices_and_ledger(
    cli: Cli, tmp_path: Path, sqlite_template: Path
) -> None:
    reference = Cli(db_url=f"sqlite:///{tmp_path / 'reference.db'}", env={})
    shutil.copy(sqlite_template, tmp_path / "reference.db")
    (tmp_path / "ref").mkdir()
    build(reference, tmp_path / "ref")
    command = [sys.executable, "-m", "billctl", "invoices", "finalize", "--period", "2026-10", "--yes"]
    started = time.monotonic()
    ran = subprocess.run(command, env=env_for(reference), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started  # the kills land over the second half of an uninterrupted run
    assert ran.returncode == 0, ran.stderr
    expected = books(reference.db_url)
    assert len(expected["invoices"]) == TENANTS and any(x[2] == "credit" for x in expected["lines"])

    build(cli, tmp_path)
    env = env_for(cli)
    rng = random.Random(20261026)
    kills, partial = 0, 0
    for _ in range(4):
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.45, 0.95) * took)
        if proc.poll() is not None:
            proc.communicate()
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        now = books(cli.db_url)
        drawn = {x[4] for x in now["ledger"] if x[2] == "draw"}
        assert drawn <= {x[0] for x in now["invoices"]}  # no draw without its invoice, at any point
        partial += 0 < len(now["invoices"]) < TENANTS
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert kills >= 1
    got = books(cli.db_url)
    assert got["invoices"] == expected["invoices"]
    assert got["lines"] == expected["lines"]
    assert got["ledger"] == expected["ledger"]
    draws = [(x[0], x[1]) for x in got["ledger"] if x[2] == "draw"]
    assert len(draws) == len(set(draws))  # each invoice drew on a grant once
