"""billctl usage import"""

from __future__ import annotations

from typing import Annotated

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, state
from billctl.errors import ExitCode
from billctl.services import usage as svc

app = typer.Typer(help="Usage: import events into usage buckets.", no_args_is_help=True)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Newline-delimited JSON events, - for stdin.")],
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 6 (partial) when any line was rejected.")] = False,
) -> None:
    """Import events ({"tenant_id", "endpoint", "ts", "units", "event_id"} per line).

    Each (tenant, event_id) counts once, across repeated imports. Bad lines are reported with
    their line number and skipped; the good ones still land."""
    st = state(ctx)
    out = st.output(output)
    report = svc.import_events(st.app, file, dry_run=dry_run)
    if out.fmt == "json":
        out.json({**report.as_dict(), "dry_run": dry_run})
    else:
        for where, why in report.rejected[:50]:
            out.warn(f"{where}: {why}")
        if len(report.rejected) > 50:
            out.warn(f"... and {len(report.rejected) - 50} more rejected lines (see -o json)")
        for key, count in sorted(report.late.items()):
            tenant, period = key.split(" ")
            out.warn(
                f"{count:,} event(s) for {tenant} landed in finalized period {period}: "
                "they will be billed as an adjustment on the next invoice"
            )
        verb = "would count" if dry_run else "counted"
        out.success(
            f"{report.read:,} events read, {verb} {report.counted:,} ({report.units:,} units), "
            f"{report.duplicates:,} duplicates skipped, {len(report.rejected):,} rejected"
        )
    if strict and report.rejected:
        raise typer.Exit(int(ExitCode.PARTIAL))
