"""The generated documentation is current: reference pages (from the code) and recorded screens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--check"], capture_output=True, text=True, timeout=240
    )


def test_reference_pages_are_current():
    result = check("gen_reference.py")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_recorded_screens_are_current():
    """docs/screens/*.txt and the README's screen are what `make screens` records today (times masked)."""
    result = check("screens.py")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
