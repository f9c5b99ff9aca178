"""Operator conventions across the CLI: every list command takes -o table|json|csv, NO_COLOR output
has no escape codes, and shell completion installs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import BASIC, bulk, events_file, write_plan

LIST_COMMANDS = [
    ["tenants", "list"],
    ["plans", "list"],
    ["discounts", "list", "acme"],
    ["invoices", "list"],
    ["invoices", "export", "--period", "2026-10"],
    ["report", "revenue", "--period", "2026-10"],
    ["invoices", "recompute", "--period", "2026-10"],
]


def _setup(cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    cli("tenants", "create", "acme", "--name", "Acme [EU]")
    cli("tenants", "assign-plan", "acme", "basic", "--effective", "2026-10-01")
    cli("discounts", "add", "acme", "--kind", "fixed", "--value", "1.00", "--from", "2026-10-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 12_345)))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def test_every_list_command_takes_table_json_and_csv(cli, tmp_path):
    _setup(cli, tmp_path)
    for command in LIST_COMMANDS:
        table = cli(*command, "-o", "table")
        assert table.stdout.strip() and "\x1b[" not in table.stdout, command  # NO_COLOR: no escape codes
        doc = json.loads(cli(*command, "-o", "json").stdout)
        assert doc, command
        rows = list(csv.reader(io.StringIO(cli(*command, "-o", "csv").stdout)))
        assert len(rows) >= 2 and len({len(r) for r in rows}) == 1, command  # header + rows, rectangular


def test_show_completion_mentions_billctl(monkeypatch):
    import typer.completion

    from billctl.cli.app import app

    # with shellingham installed (typer depends on it), --show-completion detects the shell from the
    # process tree, where a test runner may have none: let it detect bash
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    result = CliRunner().invoke(app, ["--show-completion"])
    assert result.exit_code == 0, result.output
    assert "billctl" in result.stdout and "_BILLCTL_COMPLETE" in result.stdout
    assert "complete -o default -F _billctl_completion billctl" in result.stdout


def test_install_completion_is_offered():
    from billctl.cli.app import app

    result = CliRunner().invoke(app, ["--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_completion_completes_the_new_commands():
    exe = shutil.which("billctl", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the billctl entry point is not installed next to this Python")
    env = {**os.environ, "_BILLCTL_COMPLETE": "complete_bash", "COMP_WORDS": "billctl invoices ex", "COMP_CWORD": "2"}
    out = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["explain", "export"]
    env.update(COMP_WORDS="billctl report ", COMP_CWORD="2")
    assert "revenue" in subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60).stdout
