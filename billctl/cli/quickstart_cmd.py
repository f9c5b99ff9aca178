"""billctl quickstart DIR: a whole month on embedded defaults, from an installed billctl.

The tour that `make quickstart` runs too (there is one). It copies the sample plans and events
shipped in the package into DIR/samples, writes DIR/billctl.toml (SQLite in DIR/billctl.db, no
Redis), then runs each step as the billctl command line a person would type inside DIR, printing
it first: schema, plans, tenants, plan changes, a discount, the sample events (twice: nothing
counts twice), a preview, the plan of the close (run-monthly --dry-run), the close, the close
again (nothing is finalized twice), the invoices. Afterwards `cd DIR && billctl ...` works on the
same data. It never uses a Stripe key, Redis or settings from the shell's environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from billctl.cli.common import DryRunOpt, failure, state

PLANS = ("basic", "pro", "business-eur", "starter-krw")
EVENTS = "events-2026-10.ndjson"
FILES = ("billctl.toml", "billctl.db", "billctl.db-wal", "billctl.db-shm")  # what the tour writes in DIR
CONFIG = """\
# Written by `billctl quickstart`: the embedded defaults (SQLite in this directory), with usage
# from the sample file instead of a Redis stream. No Stripe key: the close skips Stripe.
[database]
url = "sqlite:///billctl.db"

[monthly]
drain_stream = false

[usage]
# The sample events are from October 2026: accept them however long ago that is now
# (the default, 400 days, would refuse them from December 2027 on).
max_past_days = 3650
"""

# The tour: billctl command lines, run in DIR. Comments are printed with them.
TOUR: tuple[tuple[tuple[str, ...], str], ...] = (
    (("db", "upgrade"), "create the schema in billctl.db"),
    *((("plans", "create", "--file", f"samples/plans/{plan}.toml"), "") for plan in PLANS),
    (("tenants", "create", "acme", "--name", "Acme Corp", "--email", "billing@acme.test", "--currency", "USD",
      "--tax-rate", "8.25"), ""),
    (("tenants", "create", "globex", "--name", "Globex", "--email", "ap@globex.test", "--currency", "USD",
      "--timezone", "America/New_York"), ""),
    (("tenants", "create", "initech", "--name", "Initech GmbH", "--email", "rechnung@initech.test", "--currency",
      "EUR", "--timezone", "Europe/Berlin", "--tax-rate", "19"), ""),
    (("tenants", "create", "hanbit", "--name", "Hanbit", "--email", "billing@hanbit.test", "--currency", "KRW",
      "--timezone", "Asia/Seoul", "--tax-rate", "10"), ""),
    (("tenants", "create", "tata", "--name", "Tata Analytics", "--email", "ap@tata.test", "--currency", "USD",
      "--timezone", "Asia/Kolkata"), ""),
    (("tenants", "create", "umbrella", "--name", "Umbrella", "--email", "ap@umbrella.test", "--currency", "USD"), ""),
    (("tenants", "assign-plan", "acme", "basic", "--effective", "2026-10-01"), ""),
    (("tenants", "assign-plan", "acme", "pro", "--effective", "2026-10-16"), "mid-month upgrade: two segments"),
    (("tenants", "assign-plan", "globex", "pro", "--effective", "2026-10-01"), ""),
    (("tenants", "assign-plan", "initech", "business-eur", "--effective", "2026-10-01"), ""),
    (("tenants", "assign-plan", "hanbit", "starter-krw", "--effective", "2026-10-01"), ""),
    (("tenants", "assign-plan", "tata", "basic", "--effective", "2026-10-01"), ""),
    (("tenants", "assign-plan", "umbrella", "pro", "--effective", "2026-10-01"), ""),
    (("discounts", "add", "umbrella", "--kind", "percent", "--value", "10", "--from", "2026-10-01", "--until",
      "2026-12-31", "--description", "Launch partner 10 %"), ""),
    (("usage", "import", f"samples/{EVENTS}"), ""),
    (("usage", "import", f"samples/{EVENTS}"), "again: every event_id counts once"),
    (("invoices", "preview", "--period", "2026-10"), "price the month; writes nothing"),
    (("run-monthly", "--period", "2026-10", "--dry-run"), "the plan of the close; writes nothing"),
    (("run-monthly", "--period", "2026-10", "--yes"), "the close: finalize, guardrails, (Stripe)"),
    (("run-monthly", "--period", "2026-10", "--yes"), "again: nothing is finalized or sent twice"),
    (("invoices", "list", "--period", "2026-10"), ""),
    (("invoices", "show", "INV-2026-10-000001"), ""),
)  # fmt: skip


def command_line(args: tuple[str, ...]) -> str:
    import shlex

    return "billctl " + " ".join(shlex.quote(a) for a in args)


@contextmanager
def _inside(directory: Path) -> Iterator[None]:
    """Run in DIR with none of the shell's billctl or Stripe settings (restored afterwards)."""
    import os

    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("BILLCTL_", "STRIPE_")):
            del os.environ[name]
    os.environ["BILLCTL_ACTOR"] = "quickstart"
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _prepare(directory: Path, force: bool) -> None:
    import shutil
    from importlib.resources import as_file, files

    from billctl.errors import Conflict

    existing = [name for name in FILES if (directory / name).exists()]
    if existing and not force:
        raise Conflict(
            f"{directory} already holds a quickstart ({', '.join(existing)})",
            hint="name a new directory, or pass --force to start this one afresh",
        )
    directory.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (directory / name).unlink()
    with as_file(files("billctl") / "samples") as samples:
        shutil.copytree(samples, directory / "samples", dirs_exist_ok=True)
    (directory / "billctl.toml").write_text(CONFIG)


def quickstart(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to put the month: created if missing.")],
    force: Annotated[
        bool, typer.Option("--force", help="Start afresh in a directory that already holds a quickstart.")
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Close a sample month on SQLite in DIR, step by step, from the data shipped with billctl.

    Runs the same commands a person would (printed before each step), on the sample plans, tenants
    and events: no servers, no Stripe key. Afterwards, `cd DIR` and explore, e.g.
    `billctl invoices explain INV-2026-10-000001`. --dry-run prints the steps and writes nothing."""
    import shlex

    from rich.markup import escape

    out = state(ctx).out
    shown = shlex.quote(str(directory))  # as the user wrote it
    directory = directory.expanduser().resolve()
    if dry_run:
        print(f"cd {shown}")
        for args, note in TOUR:
            print(command_line(args) + (f"   # {note}" if note else ""))
        return
    _prepare(directory, force)
    from billctl.cli.app import app

    command = typer.main.get_command(app)
    with _inside(directory):
        for args, note in TOUR:
            comment = f"   [dim]# {escape(note)}[/dim]" if note else ""
            out.err.print(f"\n[bold]$ {escape(command_line(args))}[/bold]{comment}", soft_wrap=True, highlight=False)
            code = command.main(args=list(args), prog_name="billctl", standalone_mode=False)
            if code:
                raise failure(int(code), f"quickstart stopped: `{command_line(args)}` exited {code}")
    out.success(f"October 2026 closed in {escape(shown)}")
    out.info(f"explore it: cd {escape(shown)} && billctl invoices explain INV-2026-10-000001")
