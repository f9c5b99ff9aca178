"""Stripe charges exactly what billctl finalized (DESIGN.md invariant 10), against FakeStripe over HTTP:
customer coupons are not inherited, a draft that differs is never finalized (exit 6, the differences
spelled out and stored), a customer balance is shown and not mistaken for a difference, and stuck
drafts of voided invoices are deleted; segment lines carry their own service period."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    SimulatedCrash,
    assert_exactly_once,
    crash_after,
    currency_plan,
    customers_for,
    every_currency_pushed,
    local_invoice,
    make_app,
    setup_tenants,
    stripe_env,
    stripe_invoices_for,
    stripe_items_for,
)
from tests.helpers import BASIC, write_plan

NUMBER = "INV-2026-10-000001"

pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def _taxed_tenant(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """acme on `basic` with 10 % tax: base 29.00 + usage 15.00 + tax 4.40 = 48.40."""
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli("tenants", "update", "acme", "--tax-rate", "10")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def test_a_customer_coupon_does_not_change_what_stripe_charges(cli, tmp_path, fake, db_url):
    """The Stripe customer carries a 10 % coupon (given in the Dashboard): Stripe would cut billctl's
    tax line and total. billctl's draft inherits nothing, so Stripe's total is billctl's."""
    _taxed_tenant(cli, tmp_path)
    cli.env.update(stripe_env(fake))
    (customer,) = cli("stripe", "sync-customers", "-o", "json").json()["customers"]
    coupon = fake.client(TEST_KEY).v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    fake.give_customer_discount(customer["stripe_id"], coupon.id)

    doc = cli("stripe", "push", "-o", "json").json()
    (pushed,) = doc["invoices"]
    assert pushed["action"] == "pushed" and pushed["total"]["minor"] == 4840
    remote = assert_exactly_once(fake, db_url, NUMBER, "acme")
    assert remote["total"] == remote["subtotal"] == 4840 == local_invoice(db_url, NUMBER)["total_minor"]
    assert remote["discounts"] == [] and remote["total_discount_amounts"] == []
    assert remote["automatic_tax"]["enabled"] is False
    items = stripe_items_for(fake, remote["id"])
    assert {i["metadata"]["kind"] for i in items} == {"base", "usage", "tax"}
    assert all(i["discountable"] is False for i in items)
    assert fake.customers[customer["stripe_id"]]["discount"] is not None  # the coupon stays the customer's


def _tamper_after_items(fake, change):  # type: ignore[no-untyped-def]
    """A gateway hook: right after billctl added its last item, someone changes the draft in Stripe."""
    calls: list[str] = []

    def hook(label: str) -> None:
        calls.append(label)
        if label == "create invoice item" and calls.count(label) == 3:  # base, usage, tax
            (draft,) = [i for i in fake.invoices.values() if i["status"] == "draft"]
            change(fake.client(TEST_KEY), draft)

    return hook


def _coupon_on_the_tax_line(client, draft) -> None:  # type: ignore[no-untyped-def]
    coupon = client.v1.coupons.create(params={"percent_off": 10})
    items = client.v1.invoice_items.list(params={"invoice": draft["id"]}).data
    tax = next(i for i in items if i.metadata.kind == "tax")
    client.v1.invoice_items.update(tax.id, params={"discountable": True})
    client.v1.invoices.update(draft["id"], params={"discounts": [{"coupon": coupon.id}]})


CHANGES = {
    "coupon": (_coupon_on_the_tax_line, ["Stripe discounts of 0.44 USD (di_", "total 47.96 USD instead of 48.40 USD"]),
    "tax": (
        lambda client, draft: client.v1.invoices.update(draft["id"], params={"automatic_tax": {"enabled": True}}),
        ["Stripe's automatic tax is on"],
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_draft_that_differs_is_not_finalized_and_the_run_exits_6(cli, tmp_path, fake, db_url, change):
    from billctl.services import stripe_sync as svc

    _taxed_tenant(cli, tmp_path)
    tamper, expected = CHANGES[change]
    app = make_app(db_url, fake)
    report = svc.push(app, svc.gateway(app, on_call=_tamper_after_items(fake, tamper)))
    (failed,) = report.failures
    for text in expected:
        assert text in failed.note
    (draft,) = stripe_invoices_for(fake, NUMBER)
    assert draft["status"] == "draft"  # never finalized: nothing charged
    assert not any(r.path.endswith("/finalize") for r in fake.request_log)

    # the CLI run reports it, stores it and exits 6 (PARTIAL)
    cli.env.update(stripe_env(fake))
    result = cli("stripe", "push", "-o", "json", expect=6)
    doc = result.json()
    (reason,) = [f["reason"] for f in doc["failed"]]
    assert f"Stripe draft {draft['id']} differs from the invoice" in reason
    assert all(text in reason for text in expected) and "re-run `billctl stripe push`" in reason
    assert doc["invoices"][0]["action"] == "failed"
    assert local_invoice(db_url, NUMBER)["stripe_error"] == reason
    table = cli("stripe", "push", expect=6)
    assert "differs from the invoice" in table.stdout + table.stderr
    # invoices show and list tell it too, until a push succeeds
    assert cli("invoices", "show", NUMBER, "-o", "json").json()["stripe_error"] == reason
    assert cli("invoices", "list", "-o", "json").json()[0]["stripe_error"] == reason
    (row,) = csv.DictReader(io.StringIO(cli("invoices", "list", "-o", "csv").stdout))
    assert row["stripe_error"] == reason
    for args in (("show", NUMBER), ("list",)):
        shown = cli("invoices", *args)
        assert f"{NUMBER}: the last Stripe push failed: Stripe draft {draft['id']} differs" in " ".join(
            shown.stderr.split()
        )
    drift = cli("stripe", "reconcile", "-o", "json", expect=10).json()["drift"]
    assert [d["drift"] for d in drift] == ["incomplete"] and "differs from the invoice" in drift[0]["detail"]

    # once the draft is put right in Stripe, the next push finalizes it and forgets the error
    fake.client(TEST_KEY).v1.invoices.update(draft["id"], params={"discounts": "", "automatic_tax": {"enabled": False}})
    (done,) = cli("stripe", "push", "-o", "json").json()["invoices"]
    assert done["action"] == "completed"
    assert_exactly_once(fake, db_url, NUMBER, "acme")
    assert local_invoice(db_url, NUMBER)["stripe_error"] is None
    assert cli("invoices", "show", NUMBER, "-o", "json").json()["stripe_error"] is None
    assert "push failed" not in cli("invoices", "list").stderr
    cli("stripe", "reconcile")


def test_an_item_added_to_the_draft_by_someone_else_stops_it(cli, tmp_path, fake, db_url):
    from billctl.services import stripe_sync as svc

    _taxed_tenant(cli, tmp_path)
    app = make_app(db_url, fake)
    calls: list[str] = []

    def hook(label: str) -> None:
        calls.append(label)
        if label == "create invoice" and len([c for c in calls if c == label]) == 1:
            (draft,) = fake.invoices.values()
            fake.client(TEST_KEY).v1.invoice_items.create(
                params={"customer": draft["customer"], "invoice": draft["id"], "amount": 999, "currency": "usd"}
            )

    (failed,) = svc.push(app, svc.gateway(app, on_call=hook)).failures
    assert "items billctl did not add: ii_" in failed.note
    assert "total 58.39 USD instead of 48.40 USD" in failed.note


def test_a_customer_balance_is_shown_not_taken_for_a_difference(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    (customer,) = cli("stripe", "sync-customers", "-o", "json").json()["customers"]
    fake.client(TEST_KEY).v1.customers.update(customer["stripe_id"], params={"balance": -300})  # a credit
    (pushed,) = cli("stripe", "push", "-o", "json").json()["invoices"]
    assert pushed["action"] == "pushed" and pushed["total"]["minor"] == 4400
    assert pushed["amount_due"]["minor"] == 4100
    assert "customer balance applied by Stripe: a credit of 3.00 USD, Stripe collects 41.00 USD" in pushed["note"]
    remote = assert_exactly_once(fake, db_url, NUMBER, "acme")
    assert (remote["total"], remote["starting_balance"], remote["amount_due"]) == (4400, -300, 4100)
    cli("stripe", "reconcile")


# -- voided invoices whose Stripe copy is a draft --------------------------------------------------


@pytest.mark.parametrize("stored", [True, False], ids=["id-stored", "id-never-stored"])
def test_a_voided_invoice_whose_stripe_copy_is_a_draft_gets_it_deleted(cli, tmp_path, fake, db_url, stored):
    """A push stopped before finalizing left a draft in Stripe (its id stored, or not: the crash came
    right after Stripe created it). The invoice is voided here: the next push deletes the draft, and
    reconcile stops reporting it."""
    from billctl.services import stripe_sync as svc

    setup_tenants(cli, tmp_path, ["acme"])
    app = make_app(db_url, fake)
    calls = ["search customers", "create customer", "update customer", "create invoice"]
    crash_at = len(calls) + (2 if stored else 0)  # after the first item, or right after the create
    with pytest.raises(SimulatedCrash):
        svc.push(app, svc.gateway(app, on_call=crash_after(crash_at)))
    (draft,) = stripe_invoices_for(fake, NUMBER)
    assert draft["status"] == "draft"
    assert (local_invoice(db_url, NUMBER)["stripe_invoice_id"] is not None) is stored
    cli.env.update(stripe_env(fake))
    cli("invoices", "void", NUMBER, "--reason", "wrong plan", "--yes")
    if stored:
        assert cli("stripe", "reconcile", "-o", "json", expect=10).json()["drift"][0]["drift"] == "incomplete"

    dry = cli("stripe", "push", "--dry-run", "-o", "json").json()
    assert [(i["ref"], i["action"]) for i in dry["invoices"]] == [(NUMBER, "deleted")]
    assert draft["id"] in fake.invoices  # a dry run deletes nothing

    doc = cli("stripe", "push", "-o", "json").json()
    assert [(i["ref"], i["action"], i["status"]) for i in doc["invoices"]] == [(NUMBER, "deleted", "deleted")]
    assert draft["id"] not in fake.invoices and stripe_invoices_for(fake, NUMBER) == []
    assert local_invoice(db_url, NUMBER)["stripe_status"] == "deleted"
    assert cli("stripe", "push", "-o", "json").json()["invoices"] == []  # nothing left to do
    cli("stripe", "reconcile")  # exit 0: nothing to report


# -- plan segments ----------------------------------------------------------------------------------

PRO = BASIC.replace('"basic"', '"pro"').replace('"29.00"', '"99.00"')


def test_segment_lines_carry_their_own_service_period(cli, tmp_path, fake, db_url):
    setup_tenants(cli, tmp_path, ["acme"], finalize=False)
    cli("plans", "create", "--file", write_plan(tmp_path, "pro", PRO))
    cli("tenants", "assign-plan", "acme", "pro", "--effective", "2026-10-16")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli.env.update(stripe_env(fake))
    cli("stripe", "push")
    remote = assert_exactly_once(fake, db_url, NUMBER, "acme")
    periods = {}
    for item in stripe_items_for(fake, remote["id"]):
        start, end = (datetime.fromtimestamp(item["period"][k], UTC) for k in ("start", "end"))
        periods.setdefault(item["metadata"]["kind"], []).append((start.date().isoformat(), end.isoformat()))
    assert sorted(periods["base"]) == [
        ("2026-10-01", "2026-10-15T23:59:59+00:00"),
        ("2026-10-16", "2026-10-31T23:59:59+00:00"),
    ]
    assert ("2026-10-16", "2026-10-31T23:59:59+00:00") in periods["usage"]


# -- customers where Stripe's search is unavailable ----------------------------------------------


def test_customers_are_found_without_search(cli, tmp_path, fake, db_url):
    """Accounts in India (and a few others) have no search: billctl lists customers instead (by
    e-mail, else every customer) and still never creates one twice."""
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    setup_tenants(cli, tmp_path, ["acme", "globex"], email=False, finalize=False)
    cli("tenants", "update", "acme", "--email", "billing@acme.test")
    fake.search_available = False
    cli.env.update(stripe_env(fake))
    doc = cli("stripe", "sync-customers", "-o", "json").json()
    assert sorted(c["action"] for c in doc["customers"]) == ["created", "created"]
    assert all("customer search unavailable" in c["note"] for c in doc["customers"])
    first = {c["ref"]: c["stripe_id"] for c in doc["customers"]}

    engine = create_db_engine(db_url)  # the stored ids are lost (a restored backup, say)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tenant SET stripe_customer_id = NULL"))
    engine.dispose()
    again = cli("stripe", "sync-customers", "-o", "json").json()
    assert {c["ref"]: (c["action"], c["stripe_id"]) for c in again["customers"]} == {
        "acme": ("found", first["acme"]),  # by e-mail
        "globex": ("found", first["globex"]),  # no e-mail: from the whole list
    }
    assert len(customers_for(fake, "acme")) == len(customers_for(fake, "globex")) == 1
    searches = [r for r in fake.request_log if r.path == "/v1/customers/search"]
    assert len(searches) == 2  # one refused search per run, then the list
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    assert {i["action"] for i in cli("stripe", "push", "-o", "json").json()["invoices"]} == {"pushed"}


# -- currencies: Stripe's rules, through push --------------------------------------------------------


@pytest.fixture(scope="module")
def every_currency(tmp_path_factory, sqlite_template):  # type: ignore[no-untyped-def]
    """Every currency of the table, finalized and pushed (paid): see ``every_currency_pushed``."""
    with every_currency_pushed(tmp_path_factory.mktemp("currencies"), sqlite_template) as (fake, cli, _, outcomes):
        yield fake, cli.db_url, outcomes


def _every_currency() -> list[str]:
    from billctl.core.currencies import CURRENCIES

    return sorted(CURRENCIES)


@pytest.mark.parametrize("currency", _every_currency())
def test_every_currency_is_billed_as_stripe_charges_it(every_currency, currency):
    """Local rounding and the amount sent both follow the table; FakeStripe, with its own copy of
    Stripe's rules, accepts every amount and reads it as the money billctl finalized."""
    from decimal import Decimal

    from billctl.core.money import billing_unit, from_minor
    from tests.fakestripe.billctl_harness import local_lines
    from tests.fakestripe.currencies import major

    fake, db_url, outcomes = every_currency
    outcome = outcomes[f"t-{currency.lower()}"]
    assert outcome["action"] == "pushed", outcome["note"]
    number = outcome["ref"]
    (remote,) = stripe_invoices_for(fake, number)
    local = local_invoice(db_url, number)
    assert remote["currency"] == currency.lower() and remote["status"] in ("open", "paid")
    assert major(remote["total"], currency) == from_minor(local["total_minor"], currency)
    unit = billing_unit(currency)
    lines = local_lines(db_url, number)
    items = {int(i["metadata"]["billctl_line"]): i for i in stripe_items_for(fake, remote["id"])}
    assert sorted(items) == [p for p, _, _ in lines]
    for position, amount_minor, _ in lines:
        amount = from_minor(amount_minor, currency)
        assert amount % unit == 0, f"line {position}: {amount} is finer than {unit}"  # rounded once, to the unit
        assert major(items[position]["amount"], currency) == amount
    usage = from_minor(lines[1][1], currency)
    assert usage == (Decimal("14.7485") / unit).quantize(Decimal(1), rounding="ROUND_HALF_UP") * unit


def test_a_currency_or_amount_billctl_cannot_bill_exactly_is_refused(cli, tmp_path):
    cli("db", "upgrade")
    refused = cli("tenants", "create", "acme", "--currency", "LYD", expect=3)
    assert "not a currency Stripe charges in" in refused.stderr
    plan = cli("plans", "create", "--file", write_plan(tmp_path, "lyd", currency_plan("LYD")), expect=3)
    assert "not a currency Stripe charges in" in plan.stderr
    isk_plan = write_plan(tmp_path, "isk", currency_plan("ISK").replace('"29"', '"29.50"'))
    isk = cli("plans", "create", "--file", isk_plan, expect=3)
    assert "base_fee: 29.50 is finer than ISK allows (Stripe charges ISK to 0 decimal place(s)" in isk.stderr
    kwd_plan = write_plan(tmp_path, "kwd", currency_plan("KWD").replace('"29"', '"29.125"'))
    kwd = cli("plans", "create", "--file", kwd_plan, expect=3)
    assert "Stripe charges KWD to 2 decimal place(s): sent to Stripe in thousandths ending in 0" in kwd.stderr


def test_an_amount_stripe_would_refuse_is_never_sent(cli, tmp_path, fake, db_url):
    """An invoice finalized before billctl knew Stripe's KWD rule holds 1.235 KWD: push refuses it
    up front, naming the rule, and sends nothing for it."""
    import sqlalchemy as sa

    from billctl.db.engine import create_db_engine

    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "kwd", currency_plan("KWD")))
    cli("tenants", "create", "acme", "--currency", "KWD")
    cli("tenants", "assign-plan", "acme", "p-kwd", "--effective", "2026-10-01")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE invoice_line SET amount_minor = 29005"))
        conn.execute(sa.text("UPDATE invoice SET subtotal_minor = 29005, total_minor = 29005"))
    engine.dispose()
    cli.env.update(stripe_env(fake))
    doc = cli("stripe", "push", "-o", "json", expect=6).json()
    (reason,) = [f["reason"] for f in doc["failed"]]
    assert "KWD 29.005 cannot be charged by Stripe (Stripe charges KWD to 2 decimal place(s)" in reason
    assert fake.invoiceitems == {}
