"""The how-to guides' own code runs: moving a quickstart month from SQLite to PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]


def code_block(page: str, title: str) -> str:
    text = (ROOT / "docs" / page).read_text()
    match = re.search(rf'```python title="{re.escape(title)}"\n(.*?)\n```', text, re.S)
    assert match, f"{page} has no python block titled {title}"
    return match.group(1)


def billctl(*args: str, cwd: Path) -> dict | list:
    from billctl.cli.app import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "BILLCTL_ACTOR": "tester"})
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "-o" in args else {}


def test_sqlite_to_postgresql_copy_keeps_every_invoice(tmp_path, pg_admin_url, pg_template, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("BILLCTL_", "STRIPE_")) and not name.startswith("BILLCTL_TEST_"):
            monkeypatch.delenv(name)
    billctl("quickstart", "month", cwd=tmp_path)
    month = tmp_path / "month"
    sqlite_url = f"sqlite:///{month / 'billctl.db'}"
    name = f"billctl_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))  # upgraded, empty
    pg_url = sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        script = tmp_path / "copy_to_postgres.py"
        script.write_text(code_block("how-to/sqlite-to-postgresql.md", "copy_to_postgres.py"))
        copied = subprocess.run([sys.executable, str(script), sqlite_url, pg_url], capture_output=True, text=True)
        assert copied.returncode == 0, copied.stderr
        assert "invoice: 6 row(s)" in copied.stdout
        before = billctl("--database-url", sqlite_url, "invoices", "list", "-o", "json", cwd=month)
        after = billctl("--database-url", pg_url, "invoices", "list", "-o", "json", cwd=month)
        assert after == before and len(after) == 6
        explained = billctl(
            "--database-url", pg_url, "invoices", "explain", "INV-2026-10-000001", "-o", "json", cwd=month
        )
        assert explained["verification"]["fingerprint_matches_inputs"] is True
        assert explained["verification"]["inputs_reprice_to_same_lines"] is True
        # new rows continue after the copied ids (sequences moved), and a second copy is refused
        created = billctl("--database-url", pg_url, "tenants", "create", "newco", "-o", "json", cwd=month)
        assert created["id"] == "newco"
        again = subprocess.run([sys.executable, str(script), sqlite_url, pg_url], capture_output=True, text=True)
        assert again.returncode != 0 and "is not empty in the target" in again.stderr
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
