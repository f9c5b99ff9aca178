"""The prepaid-credit examples the README quotes are what the core computes (the how-to's full table is
checked end to end in tests/integration/test_credits_invoicing.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from billctl.core import credits as c
from billctl.core.money import format_amount

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)


def apply(currency: str, charges: str, rate: str, *grants: tuple[str, c.CreditKind]) -> c.Application:
    made = [c.Grant(i, currency, D(amount), kind, START, None, 50, "") for i, (amount, kind) in enumerate(grants, 1)]
    return c.apply_credits(
        currency=currency,
        charges=D(charges),
        tax_rate=D(rate),
        grants=made,
        entries=[c.grant_entry(g) for g in made],
        period_end=END,
    )


def readme(text: str) -> str:
    """``text`` as it reads in the README (which wraps its lines)."""
    return " ".join(text.split())


def test_the_readme_examples_are_computed_not_typed() -> None:
    said = " ".join(README.split())
    promo = apply("USD", "100.00", "8.25", ("30.00", c.CreditKind.PROMOTIONAL))
    assert readme(
        f"taxable {format_amount(promo.taxable, 'USD')}, tax {format_amount(promo.tax, 'USD')}, "
        f"total **{format_amount(promo.total, 'USD')}**"
    ) in said
    paid = apply("USD", "100.00", "8.25", ("50.00", c.CreditKind.PURCHASED))
    gross = paid.taxable + paid.tax
    assert readme(f"gives {format_amount(gross, 'USD')} − 50.00 = **{format_amount(paid.total, 'USD')}**") in said
    jpy = apply("JPY", "12345", "10", ("1000", c.CreditKind.PROMOTIONAL), ("5000", c.CreditKind.PURCHASED))
    assert readme(f"gives tax ¥{format_amount(jpy.tax, 'JPY')} and **¥{format_amount(jpy.total, 'JPY')}**") in said
