"""Prepaid credits on SQLite and PostgreSQL: grant, balance, ledger, alerts and expiry through the CLI;
bad input refused with the field named, exit 3 and nothing written; draws on a finalized invoice
recorded once and given back once; a paid purchase granted once; the migration matches the models."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billctl.config import load_config
from billctl.services.context import App
from tests.helpers import BASIC, bulk, events_file, sql_rows, write_plan

WRITTEN = ("credit_grant", "credit_ledger", "credit_purchase", "audit_log")


def counts(db_url: str) -> dict[str, int]:
    return {t: sql_rows(db_url, f"SELECT COUNT(*) FROM {t}")[0][0] for t in WRITTEN}


def app_for(db_url: str) -> App:
    return App(config=load_config(None, {"database.url": db_url}, env={}), actor="tester")


def acme_october(cli, tmp_path: Path, *, tax: str = "10") -> None:  # type: ignore[no-untyped-def]
    """acme (USD, tax 10 %) on `basic` since September, 25,000 calls in October: 44.00 + 4.40 tax."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    cli("tenants", "create", "acme", "--tax-rate", tax)
    cli("tenants", "assign-plan", "acme", "basic", "--effective", "2026-09-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000)))


def test_grant_balance_and_ledger(cli, tmp_path):
    acme_october(cli, tmp_path)
    cli("tenants", "create", "kuma", "--currency", "JPY")
    doc = cli(
        "credits", "grant", "acme", "--amount", "100", "--kind", "promotional", "--reason", "sign-up bonus",
        "--effective", "2026-10-01", "--expires", "2027-01-01", "-o", "json",
    ).json()  # fmt: skip
    assert doc["grant"]["amount"] == {"minor": 10000, "currency": "USD", "decimal": "100.00"}
    assert doc["grant"]["expires_at"] == "2027-01-01T00:00:00+00:00" and doc["balance"]["minor"] == 10000
    cli("credits", "grant", "acme", "--amount", "50.00", "--kind", "purchased", "--reason", "top-up")
    jpy = ["--amount", "5000", "--kind", "purchased", "--reason", "top-up", "--currency", "jpy"]
    cli("credits", "grant", "kuma", *jpy)
    balances = {b["tenant"]: b for b in cli("credits", "balance", "-o", "json").json()}
    assert balances["acme"]["balance"]["decimal"] == "150.00" and balances["acme"]["promotional"]["minor"] == 10000
    assert balances["kuma"]["available"] == {"minor": 5000, "currency": "JPY", "decimal": "5000"}
    ledger = cli("credits", "ledger", "acme", "-o", "json").json()
    assert [e["kind"] for e in ledger["entries"]] == ["grant", "grant"]
    assert ledger["entries"][-1]["balance_after"] == ledger["balance"]
    csv = cli("credits", "ledger", "acme", "-o", "csv").stdout.splitlines()
    assert csv[0].startswith("id,at,kind,grant") and len(csv) == 3
    assert "sign-up bonus" in cli("audit", "list", "-o", "json").stdout


def test_dry_run_writes_nothing(cli, tmp_path):
    acme_october(cli, tmp_path)
    before = counts(cli.db_url)
    result = cli("credits", "grant", "acme", "--amount", "10", "--kind", "promotional", "--reason", "x", "--dry-run")
    assert "would grant USD 10.00" in result.stderr
    assert counts(cli.db_url) == before


BAD = [
    (["acme", "--amount", "0"], "amount"),
    (["acme", "--amount", "-5"], "amount"),
    (["acme", "--amount", "abc"], "amount"),
    (["acme", "--amount", "0.001"], "amount"),
    (["acme", "--amount", "1e30"], "amount"),
    (["acme", "--amount", "10", "--currency", "EUR"], "EUR"),
    (["acme", "--amount", "10", "--effective", "2026-10-10", "--expires", "2026-10-01"], "expir"),
    (["acme", "--amount", "10", "--effective", "2026-10-10", "--expires", "2026-10-10"], "expir"),
    (["acme", "--amount", "10", "--expires", "2026-02-30"], "expires"),
    (["acme", "--amount", "10", "--priority", "101"], "priority"),
    (["nobody", "--amount", "10"], "unknown tenant"),
]


@pytest.mark.parametrize("args,named", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_with_exit_3_and_nothing_written(cli, tmp_path, args, named):
    acme_october(cli, tmp_path)
    before = counts(cli.db_url)
    result = cli("credits", "grant", *args, "--kind", "promotional", "--reason", "bad", expect=3)
    assert named in result.stderr and "Traceback" not in result.stderr
    assert counts(cli.db_url) == before


def test_bad_kind_and_empty_reason(cli, tmp_path):
    acme_october(cli, tmp_path)
    before = counts(cli.db_url)
    grant = ["credits", "grant", "acme", "--amount", "1"]
    assert "kind" in cli(*grant, "--kind", "free", "--reason", "x", expect=3).stderr
    assert "reason" in cli(*grant, "--kind", "purchased", "--reason", " ", expect=3).stderr
    assert "unknown tenant" in cli("credits", "ledger", "nobody", expect=3).stderr
    assert counts(cli.db_url) == before


def test_draws_on_a_finalized_invoice_are_recorded_once_and_given_back_once(cli, tmp_path):
    """Finalize draws the credits in the invoice's transaction, keyed by invoice; recording the same
    draws again writes nothing, planning again finds nothing left; giving back twice gives back once."""
    from billctl.core.invoice import InvoiceInputs
    from billctl.core.invoice_credits import stored_application
    from billctl.db.repositories import credits as repo
    from billctl.services import credits as svc

    acme_october(cli, tmp_path)
    cli("credits", "grant", "acme", "--amount", "30", "--kind", "promotional", "--reason", "p", "--effective",
        "2026-10-01")  # fmt: skip
    cli("credits", "grant", "acme", "--amount", "10", "--kind", "purchased", "--reason", "u", "--effective",
        "2026-10-01")  # fmt: skip
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    draws = sql_rows(cli.db_url, "SELECT grant_id, amount_minor FROM credit_ledger WHERE kind = 'draw' ORDER BY id")
    assert draws == [(1, -3000), (2, -1000)]
    app = app_for(cli.db_url)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        for _ in range(2):
            with app.uow() as uow:
                invoice = repo.invoice_by_number(uow.session, "INV-2026-10-000001")
                tenant = repo.tenant_by_key(uow.session, "acme")
                assert invoice is not None and tenant is not None
                planned = svc.plan_draws(uow, tenant, period_end=end, charges=Decimal("44.00"), tax_rate=Decimal("10"))
                assert planned.application.credits == 0  # once drawn, the balance is gone: nothing is drawn twice
                stored = InvoiceInputs.from_json(invoice.inputs).credits
                first, _ = stored_application(
                    stored, currency="USD", charges=Decimal("44.00"), tax_rate=Decimal("10"), period_end=end
                )
                assert svc.record_draws(uow, invoice, first, at=end, actor="tester") == 0  # recorded with the invoice
        assert (first.promotional, first.tax, first.purchased) == (Decimal("30.00"), Decimal("1.40"), Decimal("10.00"))
        assert sql_rows(cli.db_url, "SELECT COUNT(*) FROM credit_ledger WHERE kind = 'draw'") == [(2,)]
        for _ in range(2):
            with app.uow() as uow:
                invoice = repo.invoice_by_number(uow.session, "INV-2026-10-000001")
                assert invoice is not None
                svc.return_credits(uow, invoice, source="void", at=end, actor="tester")
        back = sql_rows(cli.db_url, "SELECT grant_id, amount_minor FROM credit_ledger WHERE kind = 'reversal'")
        assert sorted(back) == [(1, 3000), (2, 1000)]
        assert cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"] == 4000
    finally:
        app.dispose()


def test_first_plan_applies_promotional_before_tax_and_purchased_after(cli, tmp_path):
    from billctl.db.repositories import credits as repo
    from billctl.services import credits as svc

    acme_october(cli, tmp_path)
    cli("credits", "grant", "acme", "--amount", "30", "--kind", "promotional", "--reason", "p", "--effective",
        "2026-10-01")  # fmt: skip
    cli("credits", "grant", "acme", "--amount", "10", "--kind", "purchased", "--reason", "u", "--effective",
        "2026-10-01")  # fmt: skip
    app = app_for(cli.db_url)
    try:
        with app.uow(readonly=True) as uow:
            tenant = repo.tenant_by_key(uow.session, "acme")
            assert tenant is not None
            planned = svc.plan_draws(
                uow, tenant, period_end=datetime(2026, 11, 1, tzinfo=UTC), charges=Decimal("44.00"),
                tax_rate=Decimal("10"),
            )  # fmt: skip
    finally:
        app.dispose()
    a = planned.application
    assert (a.promotional, a.taxable, a.tax, a.purchased, a.total) == (
        Decimal("30.00"), Decimal("14.00"), Decimal("1.40"), Decimal("10.00"), Decimal("5.40"),
    )  # fmt: skip
    assert [(x.before_tax, str(x.amount)) for x in planned.lines] == [(True, "-30.00"), (False, "-10.00")]


def test_expiry_writes_off_once_and_waits_for_the_invoice_of_a_month_end_grant(cli, tmp_path):
    acme_october(cli, tmp_path)
    grant = ["credits", "grant", "acme", "--kind", "promotional", "--reason", "r", "--effective", "2026-10-01"]
    cli(*grant, "--amount", "20", "--expires", "2026-10-15")  # mid-period: not usable by October's invoice
    cli(*grant, "--amount", "5", "--expires", "2026-11-01")  # covers October
    doc = cli("credits", "expire", "--period", "2026-10", "-o", "json").json()
    assert [(x["grant"], x["amount"]["minor"]) for x in doc["expired"]] == [(1, 2000)]
    assert [x["grant"] for x in doc["deferred"]] == [2]  # October's invoice is not finalized yet
    again = cli("credits", "expire", "--period", "2026-10", "-o", "json").json()
    assert again["expired"] == []
    cli("invoices", "finalize", "--period", "2026-10", "--yes")  # October's invoice draws the month-end grant
    after = cli("credits", "expire", "--period", "2026-10", "-o", "json").json()
    assert after["expired"] == [] and after["deferred"] == []
    ledger = cli("credits", "ledger", "acme", "-o", "json").json()
    assert [e["kind"] for e in ledger["entries"]] == ["grant", "grant", "expiry", "draw"]
    assert ledger["entries"][-1]["invoice"] == "INV-2026-10-000001" and ledger["balance"]["minor"] == 0


def test_alerts_exit_10_below_the_threshold(cli, tmp_path):
    acme_october(cli, tmp_path)
    cli("credits", "grant", "acme", "--amount", "20", "--kind", "purchased", "--reason", "r")
    ok = cli("credits", "alerts", "-o", "json").json()
    assert ok["checked"] == 1 and ok["alerts"] == 0 and ok["tenants"][0]["run_out_on"] is None
    cli.env["BILLCTL_CREDITS_ALERT_BELOW"] = "USD=50"
    low = cli("credits", "alerts", "-o", "json", expect=10)
    doc = low.json()
    assert doc["alerts"] == 1 and doc["tenants"][0]["reasons"] == ["below USD 50.00"]
    assert "acme" in low.stderr
    cli("credits", "alerts", expect=10)


def test_a_paid_purchase_is_granted_once(cli, tmp_path):
    from billctl.db.repositories import credits as repo
    from billctl.services import credits as svc

    acme_october(cli, tmp_path)
    app = app_for(cli.db_url)
    now = datetime(2026, 11, 2, tzinfo=UTC)
    try:
        with app.uow() as uow:
            tenant = repo.tenant_by_key(uow.session, "acme")
            assert tenant is not None
            purchase = svc.create_purchase(uow, tenant, amount=Decimal("500.00"), reason="top-up", actor="t", now=now)
            purchase_id = purchase.id
        assert purchase_id is not None
        grants = set()
        for _ in range(2):  # Stripe's webhook and sync-status both report it paid
            with app.uow() as uow:
                grants.add(svc.purchase_paid(uow, purchase_id, paid_at=now, actor="t").id)
    finally:
        app.dispose()
    assert len(grants) == 1
    assert sql_rows(cli.db_url, "SELECT kind, amount_minor FROM credit_ledger") == [("grant", 50000)]
    assert sql_rows(cli.db_url, "SELECT status FROM credit_purchase") == [("paid",)]


def test_migration_matches_the_credit_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import billctl.db.models  # noqa: F401
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    finally:
        engine.dispose()
    assert [d for d in diff if "credit_" in str(d)] == []


def test_credit_documents_match_their_schemas(cli, tmp_path):
    """Each credits -o json document against its schema in docs/reference/schemas (the full scenario
    in test_json_schemas runs them too, among every other command)."""
    from tests.integration.test_json_schemas import problems

    acme_october(cli, tmp_path)
    grant = ["credits", "grant", "acme", "--kind", "promotional", "--reason", "r", "--effective", "2026-10-01"]
    docs = {
        "credits-grant": [
            cli(*grant, "--amount", "20", "--expires", "2026-10-15", "-o", "json").json(),
            cli(*grant, "--amount", "5", "--dry-run", "-o", "json").json(),
        ],
        "credits-expire": [cli("credits", "expire", "--period", "2026-10", "-o", "json").json()],
    }
    cli(*grant, "--amount", "7", "--expires", "2026-11-01")
    docs["credits-expire"].append(cli("credits", "expire", "--period", "2026-10", "--dry-run", "-o", "json").json())
    docs["credits-balance"] = [cli("credits", "balance", "-o", "json").json()]
    docs["credits-ledger"] = [cli("credits", "ledger", "acme", "-o", "json").json()]
    cli.env["BILLCTL_CREDITS_ALERT_BELOW"] = "USD=50"
    docs["credits-alerts"] = [cli("credits", "alerts", "-o", "json", expect=10).json()]
    assert docs["credits-expire"][0]["expired"] and docs["credits-expire"][1]["deferred"]
    found = [p for name, documents in docs.items() for d in documents for p in problems(name, d)]
    assert not found, "\n".join(found[:40])


def test_draws_roll_back_with_their_transaction_and_credit_notes_give_back_once(cli, tmp_path):
    """A finalize killed before its commit leaves no draw (the draws ride in the invoice's
    transaction); a credit note gives back its amount once per credit note, the last drawn first."""
    from billctl.db.repositories import credits as repo
    from billctl.services import credits as svc

    acme_october(cli, tmp_path)
    cli("invoices", "finalize", "--period", "2026-10", "--yes")  # before the grants: it draws nothing itself
    grant = ["credits", "grant", "acme", "--reason", "r", "--effective", "2026-10-01", "--amount"]
    cli(*grant, "30", "--kind", "promotional")
    cli(*grant, "10", "--kind", "purchased")
    app = app_for(cli.db_url)
    end = datetime(2026, 11, 1, tzinfo=UTC)

    def draw(uow):  # type: ignore[no-untyped-def]
        invoice = repo.invoice_by_number(uow.session, "INV-2026-10-000001")
        tenant = repo.tenant_by_key(uow.session, "acme")
        planned = svc.plan_draws(uow, tenant, period_end=end, charges=Decimal("44.00"), tax_rate=Decimal("10"))
        svc.record_draws(uow, invoice, planned.application, at=end, actor="tester")
        return invoice

    try:
        with pytest.raises(RuntimeError), app.uow() as uow:
            draw(uow)
            raise RuntimeError("killed before the commit")
        assert sql_rows(cli.db_url, "SELECT COUNT(*) FROM credit_ledger WHERE kind = 'draw'") == [(0,)]
        with app.uow() as uow:
            draw(uow)
        for _ in range(2):  # the same credit note, re-run: once
            with app.uow() as uow:
                invoice = repo.invoice_by_number(uow.session, "INV-2026-10-000001")
                svc.return_credits(uow, invoice, source="credit_note:CN-1", at=end, actor="t", amount=Decimal("12"))
        with app.uow() as uow:  # a second credit note: what is left, never more
            invoice = repo.invoice_by_number(uow.session, "INV-2026-10-000001")
            svc.return_credits(uow, invoice, source="credit_note:CN-2", at=end, actor="t", amount=Decimal("100"))
    finally:
        app.dispose()
    query = "SELECT source, grant_id, amount_minor FROM credit_ledger WHERE kind = 'reversal' ORDER BY id"
    back = sql_rows(cli.db_url, query)
    assert back == [("credit_note:CN-1", 2, 1000), ("credit_note:CN-1", 1, 200), ("credit_note:CN-2", 1, 2800)]
    assert cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"] == 4000
