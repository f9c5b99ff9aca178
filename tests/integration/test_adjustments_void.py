"""No unit is billed twice across voids, re-finalizations and adjustments (DESIGN.md invariant 11).

Late usage for a finalized period is billed as an adjustment on a later invoice. Voiding the
period's invoice and finalizing the period again must account for what those adjustments already
billed, later adjustments must bill only what no live invoice bills yet, and voiding the invoice
that carried an adjustment must let a later one bill it again. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import BASIC, bulk, events_file, write_plan

SEP, OCT = "INV-2026-09-000001", "INV-2026-10-000002"


def _setup(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    cli("tenants", "create", "acme", "--name", "Acme")
    cli("tenants", "assign-plan", "acme", "basic", "--effective", "2026-09-01")


def _import(cli, tmp_path, units: int, prefix: str) -> None:  # type: ignore[no-untyped-def]
    cli("usage", "import", events_file(tmp_path, bulk("acme", units, day="2026-09-10", prefix=prefix), f"{prefix}.nd"))


def _billed_for(db_url: str, period: str) -> tuple[int, int]:
    """(units, charges before tax in minor units) billed for ``period`` by the live invoices."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return billed_for(conn, period)
    finally:
        engine.dispose()


def billed_for(conn, period: str, tenant_id: int | None = None) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Units and pre-tax money that live invoices bill for ``period``: the period's own invoice
    (its usage, its lines but tax and adjustments for other periods) plus every adjustment line
    for the period on any live invoice (its unit change and amount)."""
    from billctl.db.models import Invoice, InvoiceLine

    inv, line = Invoice.__table__, InvoiceLine.__table__
    where = [inv.c.status != "void"] + ([inv.c.tenant_id == tenant_id] if tenant_id is not None else [])
    units = money = 0
    for row in conn.execute(sa.select(inv.c.inputs).where(inv.c.period == period, *where)):
        units += sum(sum(seg["usage"].values()) for seg in row.inputs["segments"])
    rows = conn.execute(
        sa.select(inv.c.period, line.c.kind, line.c.for_period, line.c.amount_minor, line.c.detail)
        .join(inv, inv.c.id == line.c.invoice_id)
        .where(*where, line.c.kind != "tax")
    )
    for inv_period, kind, for_period, amount, detail in rows:
        if kind == "adjustment":
            if for_period != period:
                continue
            money += amount
            if "units" in detail:
                units += int(detail["units"])
            else:  # the adjustment's own record of the change it billed
                units += sum(sum(u.values()) for u in detail["usage"]) - sum(
                    sum(u.values()) for u in detail["billed_usage"]
                )
        elif inv_period == period:
            money += amount
    return units, money


def _value(units: int) -> int:
    """basic: 29.00 a month, 10,000 units included, then 0.001 a unit (minor units, half-up)."""
    extra = max(0, units - 10_000)
    return 2900 + (extra + 5) // 10


def test_refinalized_period_never_bills_adjusted_units_twice(cli, tmp_path, db_url):
    _setup(cli, tmp_path)
    _import(cli, tmp_path, 25_000, "sep")
    cli("invoices", "finalize", "--period", "2026-09", "--yes")
    _import(cli, tmp_path, 2_000, "late1")  # late: September is finalized
    oct_doc = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()
    (adj,) = [x for x in oct_doc["invoices"][0]["lines"] if x["kind"] == "adjustment"]
    assert adj["amount"]["minor"] == 200  # 2,000 late units, billed on October's invoice
    _import(cli, tmp_path, 1_000, "late2")  # more late usage, not billed anywhere yet
    assert _billed_for(db_url, "2026-09") == (27_000, _value(27_000))

    cli("invoices", "void", SEP, "--reason", "wrong address", "--yes")
    doc = cli("invoices", "finalize", "--period", "2026-09", "--yes", "-o", "json").json()
    (sep,) = doc["invoices"]
    # the new September invoice prices all 28,000 units, less what October already billed for them
    already = [x for x in sep["lines"] if x["kind"] == "adjustment"]
    assert [x["amount"]["minor"] for x in already] == [-200] and OCT in already[0]["description"]
    assert sep["total"]["minor"] == _value(28_000) - 200
    assert _billed_for(db_url, "2026-09") == (28_000, _value(28_000))
    explained = cli("invoices", "explain", sep["number"])
    assert "billed again after its invoice was voided" in explained.stdout
    assert "price again to the same lines" in explained.stderr

    # a later invoice bills nothing more for September: every unit is billed once
    (nov,) = cli("invoices", "preview", "--period", "2026-11", "-o", "json").json()["invoices"]
    assert [x for x in nov["lines"] if x["kind"] == "adjustment"] == []

    # voiding the invoice that carried September's adjustment: October, finalized again, bills it
    cli("invoices", "void", OCT, "--reason", "re-issue", "--yes")
    assert _billed_for(db_url, "2026-09") == (26_000, _value(28_000) - 200)
    (octo,) = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()["invoices"]
    assert [x["amount"]["minor"] for x in octo["lines"] if x["kind"] == "adjustment"] == [200]
    assert _billed_for(db_url, "2026-09") == (28_000, _value(28_000))
    text = cli("invoices", "explain", octo["number"]).stdout
    assert "+2,000" in text


PERIODS = ["2026-07", "2026-08", "2026-09"]
LATER = "2026-10"
_PERIOD = st.integers(0, len(PERIODS) - 1)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("usage"), _PERIOD, st.integers(1, 9).map(lambda k: k * 1_500)),
        st.tuples(st.just("finalize"), _PERIOD, st.just(0)),
        st.tuples(st.just("void"), _PERIOD, st.just(0)),
    ),
    min_size=4,
    max_size=16,
)


def test_units_billed_per_period_equal_units_stored(cli, tmp_path, db_url):
    """Any sequence of late usage, finalize, void and re-finalize: at every step no period is
    billed for more units (or money) than it has; once every period is finalized again and a
    later invoice has run, each period is billed exactly its units and their price."""
    from billctl.config import load_config
    from billctl.core.events import Event
    from billctl.core.periods import Period
    from billctl.db.models import Invoice, Tenant
    from billctl.services import invoices as inv_svc
    from billctl.services.context import App
    from billctl.services.usage import apply_events, tenant_directory

    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    app = App(config=load_config(None, {"database.url": db_url}, env={}), actor="tester")
    serial = itertools.count()

    def stored(conn, tid: int, period: str) -> int:  # type: ignore[no-untyped-def]
        start, end = Period.parse(period).bounds("UTC")
        return sum(inv_svc.usage_totals(conn, tid, start, end).values())

    def check(key: str, settled: bool) -> None:
        with app.engine.connect() as conn:
            tid = conn.execute(sa.select(Tenant.id).where(Tenant.key == key)).scalar_one()
            live = set(
                conn.execute(
                    sa.select(Invoice.period).where(Invoice.tenant_id == tid, Invoice.status != "void")
                ).scalars()
            )
            for period in PERIODS:
                units, money = billed_for(conn, period, tid)
                have = stored(conn, tid, period)
                assert units <= have and money <= _value(have), (period, units, money, have)
                if settled and period in live:
                    assert (units, money) == (have, _value(have)), (period, units, money, have)

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=OPS)
    # the two sequences hypothesis found against the snapshot-based adjustments, kept as examples:
    # a period's adjustment carrier voided (its units lost), and a period voided and finalized
    # again after an adjustment (its units billed twice)
    @example(ops=[("finalize", 0, 0), ("usage", 0, 1500), ("finalize", 1, 0), ("usage", 0, 1500),
                  ("finalize", 2, 0), ("void", 1, 0)])  # fmt: skip
    @example(ops=[("finalize", 0, 0), ("usage", 0, 1500), ("finalize", 1, 0), ("void", 0, 0),
                  ("finalize", 0, 0)])  # fmt: skip
    def run(ops: list[tuple[str, int, int]]) -> None:
        key = f"t{next(serial)}"
        cli("tenants", "create", key, "--name", key)
        cli("tenants", "assign-plan", key, "basic", "--effective", "2026-07-01")
        for op, index, units in ops:
            period = Period.parse(PERIODS[index])
            if op == "usage":
                ts = int(datetime(period.year, period.month, 9, 12, tzinfo=UTC).timestamp() * 1000)
                event = Event(key, "/v1/search", ts, units, f"{key}-{next(serial)}")
                with app.engine.begin() as conn:
                    apply_events(conn, [("test", event)], tenant_directory(conn), 300)
            elif op == "finalize":
                inv_svc.finalize(app, period, key)
            else:
                live = inv_svc.list_invoices(app, key, period, "finalized")
                if live:
                    inv_svc.void_invoice(app, live[0][0].number, "property test")
            check(key, settled=False)
        for period in [*PERIODS, LATER]:  # settle: every period finalized again, then a later one
            inv_svc.finalize(app, Period.parse(period), key)
        check(key, settled=True)

    run()
