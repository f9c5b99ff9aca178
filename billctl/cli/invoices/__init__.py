"""billctl invoices: preview and finalize a period, inspect, recompute, export and correct invoices.

One module per concern (billing, inspection, recompute, corrections; render holds what they share);
the commands are registered here, in the order `billctl invoices --help` lists them.
"""

from __future__ import annotations

import typer

from billctl.cli.invoices import billing, corrections, inspection, recompute

app = typer.Typer(
    help="Preview, finalize, inspect and correct invoices (void, credit notes: see `invoices credit --help`).",
    no_args_is_help=True,
)
app.command("preview")(billing.preview)
app.command("finalize")(billing.finalize)
app.command("list")(inspection.list_)
app.command("show")(inspection.show)
app.command("void")(corrections.void)
app.command("explain")(inspection.explain)
app.command("recompute")(recompute.recompute)
app.command("export")(inspection.export)
app.command("credit")(corrections.credit)
app.command("credit-notes")(corrections.credit_notes)
app.command("release")(billing.release)
