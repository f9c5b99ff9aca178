"""billctl usage import|aggregate: events in, from files and from the Redis stream, counted exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, lazy_module, state
from billctl.cli.output import Out
from billctl.core.bounds import quote
from billctl.errors import BadInput, Interrupted, PartialFailure

if TYPE_CHECKING:
    from billctl.services import usage as svc
else:
    svc = lazy_module("billctl.services.usage")


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Newline-delimited JSON events, - for stdin.")],
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 6 (partial) when any line was rejected.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="events (the stream contract), envoy (Envoy/Istio access logs), auto.")
    ] = "auto",
) -> None:
    """Import events ({"tenant_id", "endpoint", "ts", "units", "event_id"} per line), or Envoy/Istio
    JSON access logs (--format envoy; tenant from gateway.tenant_field, statuses that bill from
    gateway.billable_statuses).

    Each (tenant, event_id) counts once, across repeated imports and with the stream. Bad lines are
    reported with their line number and skipped; the good ones still land."""
    st = state(ctx)
    out = st.output(output)
    if fmt not in ("auto", "events", "envoy"):
        raise BadInput(f"--format {quote(fmt)}: use events, envoy or auto")
    report = svc.import_events(st.app, file, dry_run=dry_run, fmt=fmt)
    if out.fmt == "json":
        out.json({**report.as_dict(), "dry_run": dry_run})
    else:
        for where, why in sorted(report.rejected, key=_line_number)[:50]:
            out.warn(f"{where}: {why}")
        if report.rejected_count > 50:
            out.warn(f"… and {report.rejected_count - 50:,} more rejected lines (see -o json for the first 1,000)")
        for key, count in sorted(report.late.items()):
            tenant, period = key.split(" ")
            out.warn(
                f"{count:,} event(s) for {tenant} landed in finalized period {period}: "
                "they will be billed as an adjustment on the next invoice"
            )
        verb = "would count" if dry_run else "counted"
        out.success(
            f"{report.read:,} events read, {verb} {report.counted:,} ({report.units:,} units), "
            f"{report.duplicates:,} duplicates skipped, {report.rejected_count:,} rejected"
            + (f", {report.not_billable:,} not billable (status)" if report.not_billable else "")
        )
    if strict and report.rejected_count:
        raise PartialFailure(f"{report.rejected_count:,} line(s) rejected (--strict)")


def _line_number(rejection: tuple[str, str]) -> int:
    """'events.ndjson:12' -> 12: rejections are shown in file order (unknown tenants are found later)."""
    tail = rejection[0].rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def aggregate(
    ctx: typer.Context,
    drain: Annotated[
        bool, typer.Option("--drain", help="Read until nothing new is left, then exit (default).")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep reading until SIGTERM; finish the batch, exit.")
    ] = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
    max_events: Annotated[
        int | None, typer.Option("--max-events", help="Stop after about this many entries.", min=1, max=10**12)
    ] = None,
) -> None:
    """Count the usage stream(s) into buckets through the consumer group, exactly once.

    The aggregates and the stream position commit in one transaction, at least every stream.flush_ms;
    entries are acknowledged and the stream trimmed (exactly, MINID) only after that. Each bad entry
    goes to the dead-letter stream once.
    --dry-run reads without the group (XRANGE) and rolls back: nothing changes in Redis or the database."""
    import signal
    import threading

    from billctl.logs import RunLog
    from billctl.services import aggregate as agg

    if drain and follow:
        raise BadInput(
            "--drain and --follow exclude each other", hint="--drain for a CronJob, --follow for a Deployment"
        )
    if follow and dry_run:
        raise BadInput("--dry-run shows the current backlog; it cannot be combined with --follow")
    st = state(ctx)
    out = st.output(output)
    mode = "follow" if follow else "drain"
    log = RunLog("usage aggregate", enabled=None if not st.out.quiet else False)
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum, _frame):
        stopped_by.append(signal.Signals(signum).name)
        if stop.is_set():  # a second signal: stop now (entries stay pending; nothing is lost)
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    streams = agg.stream_names(st.app)
    log.event(
        "start",
        mode=mode,
        dry_run=dry_run,
        streams=streams,
        group=st.app.config.stream.group,
        consumer=agg.consumer_name(st.app),
    )
    try:
        with _Progress(out, log, dry_run) as progress:
            report = agg.aggregate(
                st.app, follow=follow, dry_run=dry_run, stop=stop, progress=progress.update, max_events=max_events
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    interrupted = bool(stopped_by) and not follow
    summary: dict[str, Any] = {k: v for k, v in report.as_dict().items() if k not in ("rejections",)}
    log.event(
        "done",
        **summary,
        stopped_by=stopped_by[0] if stopped_by else None,
    )
    _render_aggregate(out, report, dry_run, st.app)
    if interrupted:
        raise Interrupted(f"stopped by {stopped_by[0]} before the stream was drained; the rest stays for the next run")


class _Progress:
    """A live line at a terminal; a JSON log line per batch otherwise (at most one every 5 s)."""

    def __init__(self, out: Out, log, dry_run: bool) -> None:
        self.out, self.log, self.dry_run = out, log, dry_run
        self.live: Any = None
        self.last_log = 0.0

    def __enter__(self) -> _Progress:
        if self.out.err.is_terminal and not self.out.quiet:
            from rich.live import Live

            self.live = Live("", console=self.out.err, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, report) -> None:
        import time

        rate = report.read / report.seconds if report.seconds else 0
        if self.live is not None:
            self.live.update(
                f"[bold]{'dry run: ' if self.dry_run else ''}aggregating[/bold] {report.read:,} entries "
                f"({rate:,.0f}/s) · counted {report.counted:,} · duplicates {report.duplicates:,} "
                f"· dead letters {len(report.rejected):,} · batches {report.batches:,}"
            )
        elif time.monotonic() - self.last_log >= 5:
            self.last_log = time.monotonic()
            self.log.event(
                "progress",
                read=report.read,
                counted=report.counted,
                duplicates=report.duplicates,
                dead_lettered=len(report.rejected),
                batches=report.batches,
                rate=round(rate),
            )


def _render_aggregate(out: Out, report, dry_run: bool, billing_app) -> None:
    from billctl.services.aggregate import dead_letter_name

    if out.fmt == "json":
        out.json({**report.as_dict(), "dry_run": dry_run})
        return
    for key, count in sorted(report.late.items()):
        tenant, period = key.split(" ")
        out.warn(
            f"{count:,} late event(s) for {tenant} in finalized period {period}: "
            "billed as an adjustment on the tenant's next invoice"
        )
    if report.rejected:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in report.dead_reasons.most_common())
        where = "would go" if dry_run else "went"
        out.warn(
            f"{len(report.rejected):,} entr{'y' if len(report.rejected) == 1 else 'ies'} {where} to the dead-letter "
            f"stream {dead_letter_name(billing_app)} ({kinds}); see `billctl usage dead-letters list`"
        )
    verb = "would count" if dry_run else "counted"
    rate = f" in {report.seconds:.1f} s ({report.read / report.seconds:,.0f}/s)" if report.seconds else ""
    extra = f", {report.claimed:,} claimed from idle consumers" if report.claimed else ""
    if dry_run and report.pending:
        extra += f"; {report.pending:,} entries are pending with consumers (not shown)"
    out.success(
        f"{report.read:,} entries read{rate}, {verb} {report.counted:,} ({report.units:,} units), "
        f"{report.duplicates:,} duplicates skipped, {len(report.rejected):,} dead-lettered{extra}"
    )
