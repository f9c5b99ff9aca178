"""Usage anomalies: a tenant whose usage in one window departs sharply from its own history.

Pure: numbers in, findings out. The score is a robust z-score (median and MAD, so the history's
own outliers do not hide the next one):

    z = (observed − median) / scale,   scale = max(1.4826 × MAD, relative_floor × median, 1)

against the same window on the same weekday of previous weeks (the weekly baseline) once there are
at least ``min_weeks`` such points, else against the same window on each of the previous days (the
daily baseline). A window is flagged when its score reaches the threshold and its excess over the
baseline median is at least ``min_units``. Comparing a Saturday with earlier Saturdays keeps ordinary
weekly seasonality (a busy Monday after a quiet weekend, or a busy weekend) from being flagged,
while a spike on a quiet weekend night is still caught. The floors keep a flat history (MAD = 0)
from turning every wobble into an infinite score: with the defaults a window must be at least about
twice its usual size. Only increases are flagged: a stolen API key or a runaway client sends more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import median

MAD_TO_SIGMA = 1.4826  # MAD × 1.4826 estimates the standard deviation of normal data
DAY = 86_400


@dataclass(frozen=True)
class Settings:
    threshold: float = 5.0  # robust z-score at or above which a window is anomalous
    min_units: int = 1000  # ... and the excess over the median is at least this many units
    relative_floor: float = 0.2  # the scale is at least this share of the median
    min_history: int = 7  # days of history needed to judge a tenant at all
    min_weeks: int = 2  # same-weekday points needed for the weekly check to apply


@dataclass(frozen=True)
class Score:
    median: float
    mad: float
    scale: float
    z: float
    points: int


@dataclass(frozen=True)
class Finding:
    key: str  # the tenant
    window_start: int  # epoch seconds
    observed: int
    daily: Score
    weekly: Score | None

    @property
    def basis(self) -> str:
        """Which baseline judged the window: "weekly" (same weekday) or "daily" (previous days)."""
        return "daily" if self.weekly is None else "weekly"

    @property
    def baseline(self) -> Score:
        return self.daily if self.weekly is None else self.weekly

    @property
    def ratio(self) -> float | None:
        """Observed as a multiple of the baseline median (None when the median is 0)."""
        return None if self.baseline.median == 0 else self.observed / self.baseline.median

    @property
    def z(self) -> float:
        return self.baseline.z


def robust_score(observed: float, history: Sequence[float], relative_floor: float = 0.2) -> Score:
    """Robust z-score of ``observed`` against ``history`` (which must not be empty)."""
    if not history:
        raise ValueError("robust_score needs at least one historical value")
    mid = float(median(history))
    mad = float(median([abs(v - mid) for v in history]))
    scale = max(MAD_TO_SIGMA * mad, relative_floor * abs(mid), 1.0)
    return Score(median=mid, mad=mad, scale=scale, z=(observed - mid) / scale, points=len(history))


def baselines(series: Mapping[int, float], at: int, days: int) -> tuple[list[float], list[float]]:
    """(daily, weekly) history for the window starting at ``at``: the same window on each of the
    ``days`` previous days, and the subset that falls on the same weekday. Missing windows are 0."""
    daily = [float(series.get(at - k * DAY, 0)) for k in range(1, days + 1)]
    weekly = [daily[k - 1] for k in range(7, days + 1, 7)]
    return daily, weekly


def check(
    key: str,
    series: Mapping[int, float],
    at: int,
    *,
    days: int = 28,
    history_days: int | None = None,
    settings: Settings = Settings(),
) -> Finding | None:
    """Judge one tenant's window starting at ``at``.

    ``series`` maps window start (epoch seconds) to units; ``history_days`` caps how many previous
    days count as history (a tenant created 10 days ago has 10, however large ``days`` is).
    Returns a finding, or None when the window is ordinary or there is too little history."""
    usable = days if history_days is None else max(0, min(days, history_days))
    if usable < settings.min_history:
        return None
    observed = float(series.get(at, 0))
    daily_history, weekly_history = baselines(series, at, usable)
    daily = robust_score(observed, daily_history, settings.relative_floor)
    weekly = None
    if len(weekly_history) >= settings.min_weeks:
        weekly = robust_score(observed, weekly_history, settings.relative_floor)
    basis = daily if weekly is None else weekly
    if basis.z < settings.threshold or observed - basis.median < settings.min_units:
        return None
    return Finding(key=key, window_start=at, observed=int(observed), daily=daily, weekly=weekly)


def detect(
    series_by_key: Mapping[str, Mapping[int, float]],
    at: int,
    *,
    days: int = 28,
    history_days: Mapping[str, int] | None = None,
    settings: Settings = Settings(),
) -> list[Finding]:
    """Every key whose window at ``at`` is anomalous, highest score first."""
    findings = []
    for key in sorted(series_by_key):
        found = check(
            key,
            series_by_key[key],
            at,
            days=days,
            history_days=None if history_days is None else history_days.get(key, days),
            settings=settings,
        )
        if found is not None:
            findings.append(found)
    return sorted(findings, key=lambda f: (-f.z, f.key))


def parse_window(text: str) -> int:
    """'15m', '1h', '6h', '1d', '3600' → seconds; the window must divide a day."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY}
    try:
        seconds = int(Decimal(value[:-1]) * units[value[-1]]) if value and value[-1] in units else int(value)
    except Exception:  # noqa: BLE001
        raise ValueError(f"{text!r} is not a duration; write e.g. 15m, 1h, 1d") from None
    if seconds <= 0 or DAY % seconds:
        raise ValueError(f"window {text!r} must divide a day evenly (e.g. 5m, 15m, 1h, 6h, 1d)")
    return seconds
