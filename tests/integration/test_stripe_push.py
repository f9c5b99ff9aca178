"""Stripe push and customers through the CLI and the service, against FakeStripe over HTTP, on SQLite
and PostgreSQL: happy path, dry run, every crash point, key expiry, retries, partial failure."""

from __future__ import annotations

import pytest

from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    SimulatedCrash,
    assert_exactly_once,
    crash_after,
    customers_for,
    local_invoice,
    make_app,
    setup_tenants,
    stripe_env,
    stripe_invoices_for,
    table_counts,
)

NUMBER = "INV-2026-10-000001"


pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def test_happy_path_customers_push_and_rerun(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex"])
    cli.env.update(stripe_env(fake))
    doc = cli("stripe", "sync-customers", "-o", "json").json()
    assert sorted((c["ref"], c["action"]) for c in doc["customers"]) == [("acme", "created"), ("globex", "created")]
    (acme,) = customers_for(fake, "acme")
    assert acme["name"] == "Acme" and acme["email"] == "billing@acme.test"

    pushed = cli("stripe", "push", "--period", "2026-10", "-o", "json").json()
    assert sorted(i["action"] for i in pushed["invoices"]) == ["pushed", "pushed"]
    assert all(i["status"] == "paid" for i in pushed["invoices"])
    for number, tenant in (("INV-2026-10-000001", "acme"), ("INV-2026-10-000002", "globex")):
        remote = assert_exactly_once(fake, db_url, number, tenant)
        assert remote["collection_method"] == "charge_automatically"
        assert remote["hosted_invoice_url"].startswith("https://")
        local = local_invoice(db_url, number)
        assert local["stripe_hosted_url"] == remote["hosted_invoice_url"] and local["stripe_status"] == "paid"
    first = stripe_invoices_for(fake, NUMBER)[0]
    items = sorted(
        (i for i in fake.invoiceitems.values() if i["invoice"] == first["id"]),
        key=lambda i: int(i["metadata"]["billctl_line"]),
    )
    assert items[0]["description"].startswith("Base fee")
    assert items[0]["period"]["end"] > items[0]["period"]["start"]
    assert items[0]["metadata"]["billctl_invoice"] == NUMBER

    # re-running is a no-op: nothing pending, no write sent
    writes = sum(1 for r in fake.request_log if r.method == "POST")
    again = cli("stripe", "push", "-o", "json").json()
    assert again["invoices"] == []
    cli("stripe", "sync-customers")
    assert sum(1 for r in fake.request_log if r.method == "POST") == writes

    # a renamed tenant is updated in place, never duplicated
    cli("tenants", "update", "acme", "--name", "Acme Corp")
    doc = cli("stripe", "sync-customers", "--tenant", "acme", "-o", "json").json()
    assert doc["customers"][0]["action"] == "updated"
    assert [c["name"] for c in customers_for(fake, "acme")] == ["Acme Corp"]

    table = cli("stripe", "push", "--period", "2026-10").stderr
    assert "nothing to do" in table


def test_dry_run_writes_nothing_anywhere(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex"])
    cli.env.update(stripe_env(fake))
    before = table_counts(db_url)
    result = cli("stripe", "push", "--dry-run", "-o", "json").json()
    assert result["dry_run"] is True and len(result["invoices"]) == 2
    assert all(i["action"] == "pushed" for i in result["invoices"])
    cli("stripe", "sync-customers", "--dry-run")
    cli("stripe", "sync-status", "--dry-run")
    assert [r.method for r in fake.request_log if r.method != "GET"] == []
    assert fake.customers == {} and fake.invoices == {}
    assert table_counts(db_url) == before
    assert local_invoice(db_url, NUMBER)["stripe_push_started_at"] is None


def test_send_invoice_collection(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(
        stripe_env(fake, BILLCTL_STRIPE_COLLECTION_METHOD="send_invoice", BILLCTL_STRIPE_DAYS_UNTIL_DUE="14")
    )
    doc = cli("stripe", "push", "-o", "json").json()
    (inv,) = doc["invoices"]
    assert inv["status"] == "open"
    remote = assert_exactly_once(fake, db_url, NUMBER, "acme")
    assert remote["collection_method"] == "send_invoice" and remote["days_until_due"] == 14


def _push(app, fake, hook=None, tenant=None):  # type: ignore[no-untyped-def]
    from billctl.services import stripe_sync as svc

    gw = svc.gateway(app, on_call=hook)
    return svc.push(app, gw, tenant_key=tenant)


@pytest.mark.parametrize("later", [False, True], ids=["minutes-later", "days-later"])
def test_crash_between_any_two_calls_then_rerun(cli, tmp_path, db_url, later):
    """Kill the push right after each Stripe call in turn (Stripe acted, billctl recorded nothing
    of it); a re-run, at once or two days later (idempotency keys forgotten, search caught up),
    leaves one customer and one Stripe invoice with exactly its lines."""
    with FakeStripe(api_key_prefix="sk_test_billctl", search_lag_seconds=60) as fake:
        # a clean run counts the calls of one push: customer search + create, invoice, items, finalize
        tenants = [f"t{i:02d}" for i in range(12)]
        setup_tenants(cli, tmp_path, tenants)
        app = make_app(db_url, fake)
        probe = crash_after(10_000)
        _push(app, fake, probe, tenant="t00")
        total = len(probe.calls)
        assert probe.calls[0] == "search customers" and probe.calls[-1] == "finalize invoice"
        assert 6 <= total <= len(tenants) - 1, probe.calls  # search, customer, invoice, >= 2 items, finalize
        for n in range(1, total + 1):
            tenant = tenants[n]
            with pytest.raises(SimulatedCrash):
                _push(app, fake, crash_after(n), tenant=tenant)
            if later:
                fake.advance(2 * 86400)
            report = _push(app, fake, tenant=tenant)
            assert not report.failures, report.failures
            number = local_invoice_number(db_url, tenant)
            assert_exactly_once(fake, db_url, number, tenant)
        assert fake.server_errors == []


def local_invoice_number(db_url: str, tenant: str) -> str:
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        number = conn.execute(
            sa.text("SELECT i.number FROM invoice i JOIN tenant t ON t.id = i.tenant_id WHERE t.key = :k"),
            {"k": tenant},
        ).scalar_one()
    engine.dispose()
    return number


def test_duplicate_detection_after_key_expiry(cli, tmp_path, db_url):
    """Stripe forgot the idempotency keys (a day passed); the lookup by metadata still finds the
    customer and the invoice an interrupted run created, so nothing is created twice."""
    with FakeStripe(api_key_prefix="sk_test_billctl", idempotency_ttl_seconds=3600) as fake:
        setup_tenants(cli, tmp_path, ["acme"])
        app = make_app(db_url, fake)
        hook = crash_after(4)  # search, create customer, create invoice, first item: then die
        with pytest.raises(SimulatedCrash):
            _push(app, fake, hook)
        fake.advance(7200)
        # the keys are gone: a blind re-create would now make a second invoice
        report = _push(app, fake)
        assert [o.action for o in report.outcomes if o.kind == "invoice"] == ["completed"]
        assert_exactly_once(fake, db_url, NUMBER, "acme")


def test_retries_429_500_and_lost_responses(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    fake.inject(method="POST", path_regex=r"^/v1/customers$", status=429, times=2)
    fake.inject(method="POST", path_regex=r"^/v1/invoices$", status=500, after_processing=True)  # acted, answer lost
    fake.inject(method="POST", path_regex=r"^/v1/invoiceitems$", drop_connection=True, after_processing=True)
    fake.inject(method="POST", path_regex=r"/finalize$", status=429, should_retry=True)
    doc = cli("stripe", "push", "-o", "json").json()
    assert doc["retries"] >= 5
    assert_exactly_once(fake, db_url, NUMBER, "acme")
    replayed = [r for r in fake.request_log if r.method == "POST" and r.path == "/v1/invoices"]
    assert len(replayed) == 2 and replayed[0].idempotency_key == replayed[1].idempotency_key


def test_partial_failure_lists_what_failed_and_rerun_completes(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme", "globex", "initech"])
    cli.env.update(stripe_env(fake))
    cli("stripe", "sync-customers")
    # one invoice item is refused for good (a 429 that Stripe says not to retry)
    fake.inject(method="POST", path_regex=r"^/v1/invoiceitems$", status=429, should_retry=False, times=1)
    result = cli("stripe", "push", "-o", "json", expect=6)
    doc = result.json()
    assert len(doc["failed"]) == 1 and "429" in doc["failed"][0]["reason"]
    assert sorted(i["action"] for i in doc["invoices"]) == ["failed", "pushed", "pushed"]
    assert "1 of 3 item(s) failed" in result.stderr
    again = cli("stripe", "push", "-o", "json").json()
    assert [i["action"] for i in again["invoices"]] == ["completed"]
    for number, tenant in (
        ("INV-2026-10-000001", "acme"),
        ("INV-2026-10-000002", "globex"),
        ("INV-2026-10-000003", "initech"),
    ):
        assert_exactly_once(fake, db_url, number, tenant)


def test_void_after_push_is_voided_in_stripe(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("acme", "fail")  # stays open in Stripe
    cli("stripe", "push")
    # void asks Stripe first and, the invoice being open there, voids it there before here
    result = cli("invoices", "void", NUMBER, "--reason", "wrong plan", "--yes")
    assert "voided in Stripe" in result.stderr
    (remote,) = stripe_invoices_for(fake, NUMBER)
    assert remote["status"] == "void" and local_invoice(db_url, NUMBER)["stripe_status"] == "void"
    assert cli("stripe", "push", "-o", "json").json()["invoices"] == []
    cli("stripe", "reconcile")


def test_reconcile_fix_refreshes_local_state_only(cli, tmp_path, fake, db_url):
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    cli("stripe", "push")
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE invoice SET stripe_status = 'open', stripe_invoice_id = NULL"))
    engine.dispose()
    posts = sum(1 for r in fake.request_log if r.method == "POST")
    doc = cli("stripe", "reconcile", "-o", "json", expect=10).json()
    assert {d["drift"] for d in doc["drift"]} == {"id", "status"}
    fixed = cli("stripe", "reconcile", "--fix", "-o", "json").json()
    assert fixed["fixed"] == [NUMBER] and fixed["drift"] == []
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "paid"
    assert sum(1 for r in fake.request_log if r.method == "POST") == posts  # Stripe untouched


FREE = """
name = "free"
currency = "USD"
base_fee = "0"
included_units = 1000
[price]
model = "per_unit"
unit_price = "0.001"
"""


def test_zero_amount_invoice_is_a_stripe_document(cli, tmp_path, fake, db_url):
    from tests.helpers import write_plan

    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "free", FREE))
    cli("tenants", "create", "tiny", "--name", "Tiny", "--email", "t@tiny.test")
    cli("tenants", "assign-plan", "tiny", "free", "--effective", "2026-10-01")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli.env.update(stripe_env(fake))
    doc = cli("stripe", "push", "-o", "json").json()
    (inv,) = doc["invoices"]
    assert inv["action"] == "pushed" and inv["status"] == "paid" and "zero amount" in inv["note"]
    remote = assert_exactly_once(fake, db_url, NUMBER, "tiny")
    assert remote["total"] == 0


def test_customer_deleted_in_stripe_is_replaced(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli.env.update(stripe_env(fake))
    first = cli("stripe", "sync-customers", "-o", "json").json()["customers"][0]["stripe_id"]
    fake.client("sk_test_billctl_admin").v1.customers.delete(first)
    doc = cli("stripe", "sync-customers", "-o", "json").json()
    (outcome,) = doc["customers"]
    assert outcome["action"] == "created" and outcome["stripe_id"] != first and "deleted" in outcome["note"]
    assert [c["id"] for c in customers_for(fake, "acme")] == [outcome["stripe_id"]]


def test_below_minimum_charge_is_a_stripe_document(cli, tmp_path, fake, db_url):
    from tests.helpers import write_plan

    cli("db", "upgrade")
    cli(
        "plans",
        "create",
        "--file",
        write_plan(tmp_path, "micro", FREE.replace('"free"', '"micro"').replace('"0"', '"0.30"')),
    )
    cli("tenants", "create", "tiny", "--name", "Tiny", "--email", "t@tiny.test")
    cli("tenants", "assign-plan", "tiny", "micro", "--effective", "2026-10-01")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli.env.update(stripe_env(fake))
    (inv,) = cli("stripe", "push", "-o", "json").json()["invoices"]
    assert inv["action"] == "pushed" and inv["total"]["minor"] == 30
    assert inv["status"] == "paid" and "minimum charge" in inv["note"]
    remote = assert_exactly_once(fake, db_url, NUMBER, "tiny")
    assert fake.customers[remote["customer"]]["balance"] == 30  # Stripe collects it with the next invoice


def test_two_pushes_at_once_create_nothing_twice(cli, tmp_path, fake, db_url):
    import threading

    from billctl.services import stripe_sync as svc

    tenants = ["acme", "globex", "initech", "hooli"]
    setup_tenants(cli, tmp_path, tenants)
    fake.inject(method="POST", delay=0.05, times=40)  # widen the races
    apps = [make_app(db_url, fake), make_app(db_url, fake)]
    errors: list[BaseException] = []
    failures: list[str] = []

    def run(app) -> None:  # type: ignore[no-untyped-def]
        try:
            failures.extend(o.note for o in svc.push(app, svc.gateway(app), workers=2).failures)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and failures == []
    for i, tenant in enumerate(tenants, start=1):
        assert_exactly_once(fake, db_url, f"INV-2026-10-{i:06d}", tenant)


def test_a_draft_changed_in_stripe_is_not_finalized(cli, tmp_path, db_url, fake):
    """A resumed push finds the draft's items by metadata; one edited by hand in Stripe meanwhile
    stops that invoice (partial failure) instead of finalizing a wrong amount."""
    setup_tenants(cli, tmp_path, ["acme"])
    app = make_app(db_url, fake)
    with pytest.raises(SimulatedCrash):
        _push(app, fake, crash_after(5))  # search, customer, invoice, 2 items: then die
    (draft,) = stripe_invoices_for(fake, NUMBER)
    item = next(i for i in fake.invoiceitems.values() if i["invoice"] == draft["id"])
    fake.client(TEST_KEY).v1.invoice_items.update(item["id"], params={"amount": 1})
    cli.env.update(stripe_env(fake))
    result = cli("stripe", "push", "-o", "json", expect=6)
    reason = result.json()["failed"][0]["reason"]
    assert "differs from the invoice: line 1 (base) is 0.01 USD instead of 29.00 USD" in reason
    assert fake.invoices[draft["id"]]["status"] == "draft"
    assert local_invoice(db_url, NUMBER)["stripe_error"] == reason
