"""Shared CLI plumbing: the context object and options used by several commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from billctl.cli.output import Format, Out
from billctl.services.context import App


@dataclass
class State:
    app: App
    out: Out
    debug: bool = False

    def output(self, fmt: Format | None) -> Out:
        self.out.fmt = (fmt.value if fmt else None) or self.app.config["output.format"]
        return self.out


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


MAX_ID = 2**31 - 1  # ids and versions are 32-bit integers in the database

OutputOpt = Annotated[Format | None, typer.Option("--output", "-o", help="table, json or csv (default: output.format)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AllowOpenPeriodOpt = Annotated[
    bool,
    typer.Option(
        "--allow-open-period",
        help="Also finalize tenants whose month has not ended yet in their time zone (a partial month, "
        "billed for good; each such invoice's audit record says so).",
    ),
]


def confirm(out: Out, question: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal, fail fast unless --yes."""
    import sys

    from billctl.errors import BadInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{question} needs confirmation", hint="re-run with --yes (no terminal to ask on)")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
