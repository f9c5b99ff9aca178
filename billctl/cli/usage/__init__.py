"""billctl usage: events in (files, the Redis stream), usage out (show, top, lag), dead letters,
anomalies. One module per concern; the commands are registered here, in the order
`billctl usage --help` lists them."""

from __future__ import annotations

import typer

from billctl.cli.usage import anomalies, dead_letters, ingest, views

app = typer.Typer(help="Usage: events in (stream, files), usage out (show, top, lag).", no_args_is_help=True)
app.command("import")(ingest.import_)
app.command("aggregate")(ingest.aggregate)
app.command("show")(views.show)
app.command("top")(views.top)
app.command("lag")(views.lag)
app.command("prune")(views.prune)
app.command("anomalies")(anomalies.anomalies)

dead_app = typer.Typer(help="Entries the aggregator could not count, with the reason.", no_args_is_help=True)
dead_app.command("list")(dead_letters.dead_list)
dead_app.command("replay")(dead_letters.dead_replay)
app.add_typer(dead_app, name="dead-letters")
