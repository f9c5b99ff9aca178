"""Start-up stays fast (issue 11): `--help`, every group's `--help` and shell completion import none
of the heavy libraries, a listing on SQLite imports no ORM, and the lazy command table agrees with
the modules behind it. The timings themselves are in ``python -m benchmarks startup``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from billctl.cli.app import COMMANDS

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "alembic", "mako", "stripe", "redis")
PROBE = (
    "import sys, atexit\n"
    "atexit.register(lambda: sys.__stderr__.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
    "sys.argv[0] = 'billctl'\n"
    "from billctl.cli.app import main\n"
    "main()\n"
)
GROUPS = [name for name, entry in COMMANDS.items() if not entry.target.endswith((":run_monthly", ":quickstart"))]


def _modules(args: list[str], cwd: Path, **env: str) -> set[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")}
    environ.update({"NO_COLOR": "1", "COLUMNS": "100", **env})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )
    line = next((x for x in done.stderr.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, done.stderr
    return {m.split(".")[0] for m in line.split()[1:]}


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in HEAVY if m in modules}


@pytest.mark.parametrize("args", [["--help"], *[[g, "--help"] for g in GROUPS], ["run-monthly", "--help"]])
def test_help_imports_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    assert _heavy(_modules(args, tmp_path)) == set()


@pytest.mark.parametrize("words", ["billctl inv", "billctl invoices ex", "billctl stripe ", "billctl usage "])
def test_completion_imports_nothing_heavy(words: str, tmp_path: Path) -> None:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    modules = _modules([], tmp_path, _BILLCTL_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert _heavy(modules) == set()


def test_tenants_list_on_sqlite_imports_no_orm_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")}
    env["BILLCTL_DATABASE_URL"] = url
    subprocess.run([sys.executable, "-m", "billctl", "db", "upgrade"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    modules = _modules(["tenants", "list"], tmp_path, BILLCTL_DATABASE_URL=url)
    assert _heavy(modules) == set()  # the sqlite3 read path: no SQLAlchemy, no models, no Alembic


def test_the_table_matches_the_modules() -> None:
    """`billctl --help` shows each group's help from the table without importing it: they must agree."""
    from billctl.cli.app import load_command

    for name, entry in COMMANDS.items():
        command = load_command(name, entry)
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert first == entry.help, name


def test_defaults_copied_to_keep_modules_light_agree() -> None:
    from billctl.services import credit_notes, tenants, tenants_views

    assert tenants_views.STATUSES == tenants.STATUSES
    import inspect

    from billctl.cli.invoices.corrections import credit

    assert inspect.signature(credit).parameters["settle"].default == credit_notes.DEFAULT_SETTLE
