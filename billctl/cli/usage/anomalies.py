"""billctl usage anomalies: tenants whose usage departs sharply from their own history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import OutputOpt, lazy_module, state
from billctl.core.anomaly import Settings, parse_window
from billctl.core.bounds import quote
from billctl.errors import BadInput, DriftFound

if TYPE_CHECKING:
    from billctl.services import anomalies as svc
else:
    svc = lazy_module("billctl.services.anomalies")


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--at {quote(text)} is not a time; write e.g. 2026-10-20T14:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def anomaly_doc(report: svc.AnomalyReport) -> dict:
    s = report.settings
    return {
        "window": {
            "start": report.at.isoformat(),
            "seconds": report.window,
            "end": datetime.fromtimestamp(int(report.at.timestamp()) + report.window, UTC).isoformat(),
        },
        "history_days": report.days,
        "settings": {
            "threshold": s.threshold,
            "min_units": s.min_units,
            "relative_floor": s.relative_floor,
            "min_history_days": s.min_history,
        },
        "checked": report.checked,
        "not_enough_history": report.too_new,
        "anomalies": [
            {
                "tenant": f.tenant,
                "units": f.finding.observed,
                "events": f.events,
                "baseline": f.finding.basis,
                "median": f.finding.baseline.median,
                "mad": f.finding.baseline.mad,
                "score": round(f.finding.z, 2),
                "ratio": None if f.finding.ratio is None else round(f.finding.ratio, 2),
                "daily": {"median": f.finding.daily.median, "score": round(f.finding.daily.z, 2)},
                "weekly": None
                if f.finding.weekly is None
                else {"median": f.finding.weekly.median, "score": round(f.finding.weekly.z, 2)},
                "endpoints": [{"endpoint": e, "units": u} for e, u in f.endpoints],
            }
            for f in report.flagged
        ],
    }


def anomalies(
    ctx: typer.Context,
    window: Annotated[str, typer.Option("--window", "-w", help="Window to judge: 15m, 1h, 6h, 1d ...")] = "1h",
    at: Annotated[
        str | None,
        typer.Option("--at", help="A time inside the window to judge (UTC unless given); default: last full window."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Days of history to compare with.")] = 28,
    threshold: Annotated[float, typer.Option("--threshold", help="Robust z-score that counts as anomalous.")] = 5.0,
    min_units: Annotated[
        int, typer.Option("--min-units", min=0, max=10**15, help="Ignore excesses smaller than this many units.")
    ] = 1000,
    output: OutputOpt = None,
) -> None:
    """Tenants whose usage in a window departs sharply from their own history (a stolen API key,
    a runaway client). Exits 10 when anything is found, so a scheduled job can alert on it.

    Each tenant's window is compared with the same window on the same weekday of previous weeks
    (with two weeks of history or more; else with the previous days) by a robust z-score
    (median and MAD), so ordinary weekly seasonality is not flagged."""
    st = state(ctx)
    out = st.output(output)
    try:
        seconds = parse_window(window)
    except ValueError as exc:
        raise BadInput(f"--window: {exc}") from None
    settings = Settings(threshold=threshold, min_units=min_units)
    report = svc.find_anomalies(st.app, window=seconds, at=_parse_at(at), days=days, settings=settings)
    start = int(report.at.timestamp())
    title = f"{_when(start)} – {_when(start + report.window)} UTC"
    if out.fmt == "json":
        out.json(anomaly_doc(report))
    else:
        rows = [
            (
                f.tenant,
                f"{f.finding.observed:,}",
                f"{f.events:,}",
                f"{f.finding.baseline.median:,.0f}",
                f.finding.basis,
                f"{f.finding.z:.1f}",
                "—" if f.finding.ratio is None else f"{f.finding.ratio:,.1f}×",
                ", ".join(f"{e} {u:,}" for e, u in f.endpoints[:3]),
            )
            for f in report.flagged
        ]
        columns = ["tenant", "units", "events", "usual", "baseline", "score", "vs usual", "top endpoints"]
        if out.fmt == "csv":
            out.csv(columns, rows)
        elif rows:
            out.table(
                columns,
                rows,
                title=f"Usage anomalies, {_duration(report.window)} window {title}",
                right=["units", "events", "usual", "score", "vs usual"],
            )
    if report.too_new:
        out.info(f"not enough history (< {settings.min_history} days) to judge: {', '.join(report.too_new)}")
    if report.flagged:
        raise DriftFound(f"{len(report.flagged)} of {report.checked} tenant(s) with usage in {title} look anomalous")
    out.success(f"no anomalies: {report.checked} tenant(s) with usage in {title} checked against {days} days")
