"""The quickstart keeps working as its sample data ages: its settings accept the shipped events for
years, not just the default window (400 days) after October 2026."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billctl.cli.quickstart_cmd import CONFIG

SAMPLES = Path(__file__).resolve().parents[2] / "billctl" / "samples" / "events-2026-10.ndjson"


def test_the_quickstart_accepts_its_samples_for_years() -> None:
    oldest = min(
        datetime.fromisoformat(json.loads(line)["ts"].replace("Z", "+00:00"))
        for line in SAMPLES.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    window = timedelta(days=tomllib.loads(CONFIG)["usage"]["max_past_days"])
    assert oldest + window > datetime.now(UTC) + timedelta(days=5 * 365)
