"""The shape of the package, checked: no module grows past about 400 lines without saying why."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400
REASON = "Long because:"


def test_no_module_is_long_without_a_stated_reason() -> None:
    long = []
    for path in sorted((ROOT / "billctl").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > LIMIT and not any(REASON in line for line in lines[:30]):
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert not long, (
        f"modules over {LIMIT} lines without a '{REASON} ...' line near the top (split them, or say why "
        f"they are one piece): " + ", ".join(long)
    )
