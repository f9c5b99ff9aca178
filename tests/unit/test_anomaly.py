"""The anomaly detector on generated series: spikes are caught, ordinary seasonality is not flagged."""

from __future__ import annotations

import math
import random

import pytest

from billctl.core.anomaly import DAY, Settings, baselines, check, detect, parse_window, robust_score

HOUR = 3600
START = 1_790_812_800  # 2026-10-01 00:00 UTC, a Thursday


def series(
    weeks: int, *, seed: int, weekday_factor=(1, 1, 1, 1, 1, 0.25, 0.25), level: float = 2000, noise: float = 0.15
) -> dict[int, float]:
    """Hourly units with a daily curve (quiet nights, busy afternoons), a weekly pattern and noise."""
    rng = random.Random(seed)
    data = {}
    for h in range(weeks * 7 * 24):
        at = START + h * HOUR
        weekday = (h // 24 + 3) % 7  # START is a Thursday (Monday = 0)
        hour = h % 24
        daily_curve = 0.3 + 0.7 * max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.3
        value = level * daily_curve * weekday_factor[weekday] * (1 + rng.uniform(-noise, noise))
        data[at] = round(value)
    return data


def last_hours(data: dict[int, float], days: int) -> list[int]:
    end = max(data) + HOUR
    return [t for t in range(end - days * DAY, end, HOUR)]


@pytest.mark.parametrize("seed", range(5))
def test_weekday_seasonality_is_not_flagged(seed):
    data = series(8, seed=seed)
    flagged = [t for t in last_hours(data, 14) if check("t", data, t)]
    assert flagged == []


@pytest.mark.parametrize("seed", range(5))
def test_busy_weekends_are_not_flagged(seed):
    """A consumer app: weekends four times as busy. Against the previous days alone a Saturday
    looks like a spike; the same weekday in previous weeks shows it is ordinary."""
    data = series(8, seed=seed, weekday_factor=(1, 1, 1, 1, 1, 4, 4))
    saturday_noon = next(t for t in last_hours(data, 7) if (t - START) // DAY % 7 == 2 and (t % DAY) == 12 * HOUR)
    daily, _ = baselines(data, saturday_noon, 28)
    assert robust_score(data[saturday_noon], daily).z > 5  # the daily baseline alone would cry wolf
    flagged = [t for t in last_hours(data, 14) if check("t", data, t)]
    assert flagged == []


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("factor", [5, 20])
def test_spikes_are_caught(seed, factor):
    data = series(8, seed=seed)
    rng = random.Random(100 + seed)
    spikes = sorted(rng.sample(last_hours(data, 14), 3))
    for t in spikes:
        data[t] = data[t] * factor + 1500
    flagged = [t for t in last_hours(data, 14) if check("t", data, t)]
    assert flagged == spikes


def test_stolen_key_on_a_quiet_tenant_is_caught():
    data = {START + d * DAY + 3 * HOUR: 40 + d % 5 for d in range(30)}
    at = START + 30 * DAY + 3 * HOUR
    data[at] = 5_000
    finding = check("quiet", data, at)
    assert finding is not None and finding.observed == 5_000 and finding.ratio > 50
    assert finding.basis == "weekly" and finding.weekly.points == 4
    short = check("quiet", data, at, history_days=10)  # under two weeks: previous days are the baseline
    assert short is not None and short.basis == "daily" and short.daily.points == 10


def test_flat_history_needs_a_real_excess():
    data = {START + d * DAY: 1000 for d in range(30)}
    at = START + 30 * DAY
    for value, expected in [(1000, False), (1100, False), (1500, False), (1900, False), (2000, True)]:
        data[at] = value
        assert (check("flat", data, at) is not None) is expected, value


def test_small_numbers_are_not_alarms():
    data = {START + d * DAY: d % 2 for d in range(30)}
    at = START + 30 * DAY
    data[at] = 60  # huge z against 0/1, but fewer than min_units more than usual
    assert check("tiny", data, at) is None
    assert check("tiny", data, at, settings=Settings(min_units=10)) is not None


def test_drops_are_not_flagged():
    data = {START + d * DAY: 1000 for d in range(30)}
    at = START + 30 * DAY
    data[at] = 0
    assert check("down", data, at) is None


def test_too_little_history_is_not_judged():
    data = {START + d * DAY: 10 for d in range(30)}
    at = START + 30 * DAY
    data[at] = 10_000
    assert check("new", data, at, history_days=3) is None
    assert check("new", data, at, history_days=7) is not None


def test_detect_orders_by_score_and_uses_history_caps():
    at = START + 30 * DAY
    quiet = {START + d * DAY: 100 for d in range(30)} | {at: 2_000}
    loud = {START + d * DAY: 100 for d in range(30)} | {at: 90_000}
    normal = {START + d * DAY: 100 for d in range(31)}
    found = detect({"quiet": quiet, "loud": loud, "normal": normal}, at)
    assert [f.key for f in found] == ["loud", "quiet"]
    assert detect({"loud": loud}, at, history_days={"loud": 2}) == []


def test_robust_score_ignores_outliers_in_history():
    history = [100.0] * 20 + [100_000.0] * 3  # earlier incidents do not raise the bar much
    assert robust_score(1_000, history).z > 5
    with pytest.raises(ValueError):
        robust_score(1, [])


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600), ("15m", 900), ("1d", DAY), ("300", 300), ("0.5h", 1800)])
def test_parse_window(text, seconds):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["7h", "abc", "0", "-1h", "2d", ""])
def test_parse_window_rejects(text):
    with pytest.raises(ValueError):
        parse_window(text)
