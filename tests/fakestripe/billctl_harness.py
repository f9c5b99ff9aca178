"""Driving billctl against FakeStripe in tests: settings, a service-level App, sample data.

Kept apart from the fake itself (which knows nothing about billctl)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.fakestripe import FakeStripe
from tests.helpers import BASIC, bulk, events_file, write_plan

TEST_KEY = "sk_test_billctlFAKEkey0123456789"
WEBHOOK_SECRET = "whsec_billctltestsecret"


class SimulatedCrash(BaseException):
    """Raised by a gateway hook after the N-th Stripe call: the process 'dies' right after Stripe
    acted and before billctl recorded anything (a BaseException, so no handler swallows it)."""


def stripe_env(fake: FakeStripe, rate: float = 1000, **extra: str) -> dict[str, str]:
    return {
        "BILLCTL_STRIPE_API_KEY": TEST_KEY,
        "BILLCTL_STRIPE_API_BASE": fake.url,
        "BILLCTL_STRIPE_MAX_REQUESTS_PER_SECOND": str(rate),
        **extra,
    }


def make_app(db_url: str, fake: FakeStripe, rate: float = 1000, **settings: Any) -> Any:
    from billctl.config import load_config
    from billctl.services.context import App

    overrides = {"database.url": db_url, **{k.replace("__", "."): v for k, v in settings.items()}}
    app = App(config=load_config(None, overrides, env=stripe_env(fake, rate)), actor="tester")
    return app


def crash_after(n: int):  # type: ignore[no-untyped-def]
    """A gateway on_call hook that crashes right after the n-th successful Stripe call."""
    calls: list[str] = []

    def hook(label: str) -> None:
        calls.append(label)
        if len(calls) == n:
            raise SimulatedCrash(f"crash after call {n} ({label})")

    hook.calls = calls  # type: ignore[attr-defined]
    return hook


def setup_tenants(
    cli: Any, tmp_path: Path, tenants: list[str], *, units: int = 25_000, finalize: bool = True, email: bool = True
) -> None:
    """Plan `basic`, the tenants on it, ``units`` of usage each in 2026-10, invoices finalized."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    events: list[dict] = []
    for key in tenants:
        args = ["--name", key.title()] + (["--email", f"billing@{key}.test"] if email else [])
        cli("tenants", "create", key, *args)
        cli("tenants", "assign-plan", key, "basic", "--effective", "2026-10-01")
        if units:
            events += bulk(key, units)
    if events:
        cli("usage", "import", events_file(tmp_path, events))
    if finalize:
        cli("invoices", "finalize", "--period", "2026-10", "--yes")


def stripe_invoices_for(fake: FakeStripe, number: str) -> list[dict[str, Any]]:
    return [i for i in fake.invoices.values() if i["metadata"].get("billctl_invoice") == number]


def stripe_items_for(fake: FakeStripe, invoice_id: str) -> list[dict[str, Any]]:
    return [i for i in fake.invoiceitems.values() if i["invoice"] == invoice_id]


def customers_for(fake: FakeStripe, tenant: str) -> list[dict[str, Any]]:
    return [c for c in fake.customers.values() if c["metadata"].get("tenant_id") == tenant]


def local_lines(db_url: str, number: str) -> list[tuple[int, int, str | None]]:
    """(position, amount_minor, stripe_item_id) of a local invoice's lines."""
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.position, l.amount_minor, l.stripe_item_id FROM invoice_line l "
                "JOIN invoice i ON i.id = l.invoice_id WHERE i.number = :n ORDER BY l.position"
            ),
            {"n": number},
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def local_invoice(db_url: str, number: str) -> dict[str, Any]:
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM invoice WHERE number = :n"), {"n": number}).mappings().one()
    engine.dispose()
    return dict(row)


def table_counts(db_url: str) -> dict[str, int]:
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
        counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in tables}
    engine.dispose()
    return counts


def assert_exactly_once(fake: FakeStripe, db_url: str, number: str, tenant: str) -> dict[str, Any]:
    """One customer for the tenant, one Stripe invoice for ``number``, finalized, with exactly the
    local lines (one item per position, same amounts), and the Stripe ids stored locally."""
    assert len(customers_for(fake, tenant)) == 1, customers_for(fake, tenant)
    invoices = stripe_invoices_for(fake, number)
    assert len(invoices) == 1, [i["id"] for i in invoices]
    (remote,) = invoices
    assert remote["status"] in ("open", "paid"), remote["status"]
    items = stripe_items_for(fake, remote["id"])
    lines = local_lines(db_url, number)
    assert sorted((int(i["metadata"]["billctl_line"]), i["amount"]) for i in items) == [(p, a) for p, a, _ in lines]
    assert {i["id"] for i in items} == {item for _, _, item in lines}
    local = local_invoice(db_url, number)
    assert local["stripe_invoice_id"] == remote["id"]
    assert local["stripe_number"] == remote["number"]
    assert remote["total"] == local["total_minor"]
    return remote


def currency_plan(code: str) -> str:
    """A plan in ``code``: base 29, 1,000 units included, then 0.0013 a unit."""
    return f"""
name = "p-{code.lower()}"
currency = "{code}"
base_fee = "29"
included_units = 1000
[price]
model = "per_unit"
unit_price = "0.0013"
"""


@contextmanager
def every_currency_pushed(
    tmp: Path, sqlite_template: Path, *, collection_method: str = "charge_automatically"
) -> Iterator[tuple]:
    """One tenant per currency of billctl's table (``t-<code>``), each on a plan in its currency with
    7.5 % tax, 12,345 units in 2026-10 (usage 11,345 × 0.0013 = 14.7485, rounded per currency),
    finalized and pushed: charged at once (paid) or, with ``send_invoice``, open in Stripe. Yields
    (fake, cli, app, push outcomes by tenant)."""
    import os
    import shutil

    import pytest

    from billctl.core.currencies import CURRENCIES
    from billctl.services import plans, tenants
    from tests.conftest import Cli

    shutil.copy(sqlite_template, tmp / "billctl.db")
    with pytest.MonkeyPatch.context() as mp, FakeStripe(api_key_prefix="sk_test_billctl") as fake:
        mp.chdir(tmp)
        for name in list(os.environ):
            if name.startswith("BILLCTL_") and not name.startswith("BILLCTL_TEST_"):
                mp.delenv(name)
        cli = Cli(db_url=f"sqlite:///{tmp / 'billctl.db'}", env={})
        # the services directly: 400 CLI runs would take a minute
        app = make_app(cli.db_url, fake, stripe__collection_method=collection_method)
        events = []
        for code in sorted(CURRENCIES):
            tenant = f"t-{code.lower()}"
            plans.create_plan(app, plans.read_plan_file(write_plan(tmp, code, currency_plan(code))))
            fields = tenants.TenantFields(name=tenant, currency=code, tax_rate="7.5", email=f"{tenant}@x.test")
            tenants.create_tenant(app, tenant, fields)
            tenants.assign_plan(app, tenant, f"p-{code.lower()}", "2026-10-01")
            events += bulk(tenant, 12_345)
        cli("usage", "import", events_file(tmp, events))
        cli("invoices", "finalize", "--period", "2026-10", "--yes")
        cli.env.update(stripe_env(fake, BILLCTL_STRIPE_COLLECTION_METHOD=collection_method))
        doc = cli("stripe", "push", "--workers", "4", "-o", "json").json()
        yield fake, cli, app, {i["tenant"]: i for i in doc["invoices"]}
        assert fake.server_errors == []
