"""`billctl quickstart DIR`: the tour of `make quickstart`, from the package's own samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner


def run(*args: str, env: dict[str, str] | None = None, cwd: Path):  # type: ignore[no-untyped-def]
    from billctl.cli.app import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "120", **(env or {})})
    finally:
        os.chdir(old)


def invoices(db: Path) -> list[tuple[str, str, int, str]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.key, i.number, i.total_minor, i.status FROM invoice i JOIN tenant t ON t.id = i.tenant_id"
            )
        ).all()
    engine.dispose()
    return sorted(tuple(row) for row in rows)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("BILLCTL_", "STRIPE_")) and not name.startswith("BILLCTL_TEST_"):
            monkeypatch.delenv(name)


def test_quickstart_closes_the_sample_month_in_the_named_directory(tmp_path, clean_env):
    target = tmp_path / "month"
    # Whatever the shell has configured is ignored: a Stripe key, another database, a config file.
    elsewhere = tmp_path / "other.db"
    env = {
        "STRIPE_API_KEY": "sk_test_fromtheshell",
        "BILLCTL_DATABASE_URL": f"sqlite:///{elsewhere}",
        "BILLCTL_MONTHLY_DRAIN_STREAM": "true",
    }
    result = run("quickstart", str(target), env=env, cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert not elsewhere.exists()
    assert {p.name for p in (target / "samples" / "plans").iterdir()} == {
        "basic.toml",
        "pro.toml",
        "business-eur.toml",
        "starter-krw.toml",
    }
    found = invoices(target / "billctl.db")
    assert found == [  # the close ran twice: still one invoice per tenant
        ("acme", "INV-2026-10-000001", 7874, "finalized"),
        ("globex", "INV-2026-10-000002", 10101, "finalized"),
        ("hanbit", "INV-2026-10-000004", 82500, "finalized"),
        ("initech", "INV-2026-10-000003", 29750, "finalized"),
        ("tata", "INV-2026-10-000005", 3196, "finalized"),
        ("umbrella", "INV-2026-10-000006", 8910, "finalized"),
    ]
    # every step is shown as the command line to type in DIR, and Stripe was skipped (no key)
    assert "$ billctl usage import samples/events-2026-10.ndjson" in result.stderr
    assert "5,000 duplicates skipped" in result.stderr
    assert "Stripe skipped: no API key configured" in result.stderr
    assert '"already finalized":6' in result.stderr  # the second close's log: nothing finalized twice
    # the month is there to explore with the written config, from inside DIR
    shown = run("invoices", "show", "INV-2026-10-000003", "-o", "json", cwd=target)
    assert shown.exit_code == 0, shown.output
    assert '"minor": 29750' in shown.stdout


def test_quickstart_refuses_a_used_directory_unless_forced(tmp_path, clean_env):
    target = tmp_path / "month"
    assert run("quickstart", str(target), cwd=tmp_path).exit_code == 0
    before = (target / "billctl.db").stat().st_mtime_ns
    again = run("quickstart", str(target), cwd=tmp_path)
    assert again.exit_code == 9, again.output
    assert "already holds a quickstart" in again.stderr and "--force" in again.stderr
    assert (target / "billctl.db").stat().st_mtime_ns == before
    forced = run("quickstart", str(target), "--force", cwd=tmp_path)
    assert forced.exit_code == 0, forced.output
    assert len(invoices(target / "billctl.db")) == 6  # a fresh month, not a second one on top


def test_quickstart_dry_run_lists_the_steps_and_writes_nothing(tmp_path, clean_env):
    target = tmp_path / "month"
    result = run("quickstart", str(target), "--dry-run", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert not target.exists()
    lines = result.stdout.splitlines()
    assert lines[0] == f"cd {target}"
    assert "billctl run-monthly --period 2026-10 --dry-run   # the plan of the close; writes nothing" in lines
    assert sum(line.startswith("billctl ") for line in lines) == 27
