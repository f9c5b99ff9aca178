"""Corrections (DESIGN.md invariant 11) through the CLI and the service, on SQLite and PostgreSQL,
against FakeStripe: credit notes locally and in Stripe, bad input, reports, void refused for paid
invoices, and a crash after every Stripe call of `invoices credit`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    SimulatedCrash,
    crash_after,
    local_invoice,
    make_app,
    stripe_env,
    stripe_invoices_for,
    table_counts,
)
from tests.helpers import BASIC, bulk, events_file, write_plan

ACME, GLOBEX = "INV-2026-10-000001", "INV-2026-10-000002"
pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


def _setup(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """acme and globex on basic with 8.25 % tax, 25,000 units each: 29.00 + 15.00 + tax 3.63 = 47.63."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    for key in ("acme", "globex"):
        cli("tenants", "create", key, "--name", key.title(), "--email", f"billing@{key}.test", "--tax-rate", "8.25")
        cli("tenants", "assign-plan", key, "basic", "--effective", "2026-10-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 25_000) + bulk("globex", 25_000)))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")


def _rows(db_url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_credit_notes_locally_lines_amount_rest_and_reports(cli, tmp_path, db_url):
    _setup(cli, tmp_path)
    shown = cli("invoices", "show", ACME, "-o", "json").json()
    assert [x["amount"]["minor"] for x in shown["lines"]] == [2900, 1500, 363]

    before = table_counts(db_url)
    bad = {
        ("--line", "9"): "has no line 9",
        ("--line", "3"): "is the tax line",
        ("--amount", "100"): "more than the 47.63 USD left",
        ("--amount", "1.234"): "finer than USD can be credited (Stripe charges USD to 2 decimal place(s))",
        ("--amount", "-1"): "more than 0",
        ("--line", "1", "--amount", "5"): "not both",
        ("--settle", "cash"): "--settle 'cash'",
    }
    for args, message in bad.items():
        result = cli("invoices", "credit", ACME, "--reason", "x", *args, "--yes", expect=3)
        assert message in result.stderr, (args, result.stderr)
    assert "--reason is required" in cli("invoices", "credit", ACME, "--reason", " ", "--yes", expect=3).stderr
    assert "--yes" in cli("invoices", "credit", ACME, "--reason", "outage", expect=3).stderr  # no terminal
    dry = cli("invoices", "credit", ACME, "--line", "2", "--reason", "outage", "--dry-run", "-o", "json").json()
    assert dry["dry_run"] is True and dry["total"]["minor"] == 1624
    assert table_counts(db_url) == before  # nothing written by any of these

    # a line with its share of tax: 15.00 + 3.63 x 15.00 / 44.00 = 1.2375 -> 1.24
    first = cli("invoices", "credit", ACME, "--line", "2", "--reason", "outage 2026-10-14", "--yes", "-o", "json")
    doc = first.json()
    assert (doc["number"], doc["subtotal"]["minor"], doc["tax"]["minor"], doc["total"]["minor"]) == (
        "CN-000001",
        1500,
        124,
        1624,
    )
    assert doc["stripe"]["action"] == "pending" and "not in Stripe yet" in first.stderr
    assert "credited in full already" in cli("invoices", "credit", ACME, "--line", "2", "--reason", "again", "--yes",
                                             expect=3).stderr
    # an amount, tax included; then all that is left
    second = cli("invoices", "credit", ACME, "--amount", "10.00", "--reason", "goodwill", "--yes", "-o", "json").json()
    assert second["number"] == "CN-000002" and second["total"]["minor"] == 1000
    assert second["subtotal"]["minor"] + second["tax"]["minor"] == 1000
    rest = cli("invoices", "credit", ACME, "--reason", "cancelled", "--yes", "-o", "json").json()
    assert rest["total"]["minor"] == 4763 - 1624 - 1000 and rest["left_to_credit"]["minor"] == 0
    assert "nothing is left" in cli("invoices", "credit", ACME, "--reason", "x", "--yes", expect=3).stderr

    shown = cli("invoices", "show", ACME, "-o", "json").json()
    assert [n["number"] for n in shown["credit_notes"]] == ["CN-000001", "CN-000002", "CN-000003"]
    assert (shown["credited"]["minor"], shown["left_to_credit"]["minor"]) == (4763, 0)
    # every unit of tax credited, never more: 124 + the amount's share + the rest's
    assert sum(n["tax"]["minor"] for n in shown["credit_notes"]) == 363
    assert "credit notes on" in cli("invoices", "show", ACME).stdout
    listed = {d["number"]: d for d in cli("invoices", "list", "-o", "json").json()}
    assert listed[ACME]["credited"]["minor"] == 4763 and listed[GLOBEX]["credited"]["minor"] == 0
    assert [d["number"] for d in cli("invoices", "credit-notes", "--invoice", ACME, "-o", "json").json()] == [
        "CN-000001",
        "CN-000002",
        "CN-000003",
    ]

    export = list(csv.DictReader(io.StringIO(cli("invoices", "export", "-p", "2026-10").stdout)))
    acme = [r for r in export if r["invoice"] == ACME]
    assert sum(int(r["amount_minor"]) for r in acme) == 0  # billed, then credited in full
    assert {r["kind"] for r in acme if r["credit_note"]} == {"credit", "credit_tax"}
    assert all(int(r["amount_minor"]) < 0 for r in acme if r["credit_note"])
    revenue = cli("report", "revenue", "-p", "2026-10", "-o", "json").json()
    (usd,) = revenue["by_currency"]
    assert (usd["revenue"]["minor"], usd["credited"]["minor"], usd["total"]["minor"]) == (4400, 4400, 4763)

    audit = _rows(db_url, "SELECT action, object_id, reason FROM audit_log WHERE action = 'invoice.credit'")
    assert [(a, o) for a, o, _ in audit] == [("invoice.credit", f"CN-00000{i}") for i in (1, 2, 3)]

    # an invoice with credit notes is not voided (it would be corrected twice); a void one not credited
    assert "credit note" in cli("invoices", "void", ACME, "--reason", "x", "--yes", expect=9).stderr
    cli("invoices", "void", GLOBEX, "--reason", "wrong plan", "--yes")
    assert "is void" in cli("invoices", "credit", GLOBEX, "--reason", "x", "--yes", expect=3).stderr


def _pushed(cli, tmp_path, fake) -> None:  # type: ignore[no-untyped-def]
    """acme's payment fails (open in Stripe), globex pays."""
    _setup(cli, tmp_path)
    fake.set_payment_outcome("acme", "fail")
    cli.env.update(stripe_env(fake))
    cli("stripe", "push")


def _stripe_notes(fake: FakeStripe, number: str) -> list[dict]:
    return [n for n in fake.credit_notes.values() if n["metadata"].get("billctl_credit_note") == number]


def test_credit_notes_in_stripe_open_and_paid(cli, tmp_path, fake, db_url):
    _pushed(cli, tmp_path, fake)
    (acme,) = stripe_invoices_for(fake, ACME)
    (globex,) = stripe_invoices_for(fake, GLOBEX)
    assert (acme["status"], globex["status"]) == ("open", "paid")

    # open: the credit reduces what is due; lines are credited on Stripe's own invoice lines
    doc = cli("invoices", "credit", ACME, "--line", "2", "--reason", "outage", "--yes", "-o", "json").json()
    (note,) = _stripe_notes(fake, doc["number"])
    assert doc["stripe"]["credit_note"] == note["id"] and doc["stripe"]["action"] == "pushed"
    assert (note["total"], note["pre_payment_amount"], note["post_payment_amount"]) == (1624, 1624, 0)
    assert [x["amount"] for x in note["lines"]["data"]] == [1500, 124]
    assert all(x["type"] == "invoice_line_item" for x in note["lines"]["data"])
    assert fake.invoices[acme["id"]]["amount_remaining"] == 4763 - 1624
    assert note["memo"] == f"{doc['number']}: outage"

    # paid: the default settles on the customer's balance; a refund and out of band on request
    cli("invoices", "credit", GLOBEX, "--amount", "10.00", "--reason", "goodwill", "--yes")
    cli("invoices", "credit", GLOBEX, "--amount", "5.00", "--reason", "sla", "--settle", "refund", "--yes")
    oob = cli("invoices", "credit", GLOBEX, "--reason", "cancel", "--settle", "out-of-band", "--yes", "-o", "json")
    notes = {n["metadata"]["billctl_credit_note"]: n for n in fake.credit_notes.values()}
    assert notes["CN-000002"]["customer_balance_transaction"] and notes["CN-000002"]["post_payment_amount"] == 1000
    assert fake.customers[globex["customer"]]["balance"] == -1000
    assert notes["CN-000003"]["refunds"][0]["amount_refunded"] == 500
    assert notes["CN-000004"]["out_of_band_amount"] == 4763 - 1500 == oob.json()["total"]["minor"]
    stored = _rows(db_url, "SELECT number, stripe_credit_note_id, stripe_post_payment_minor FROM credit_note")
    assert {n: (i, p) for n, i, p in stored} == {
        n: (notes[n]["id"], notes[n]["post_payment_amount"]) for n in notes
    }
    cli("stripe", "reconcile")  # agree

    # a credit note changed in Stripe behind billctl's back is drift
    fake.client(TEST_KEY).v1.credit_notes.void_credit_note(notes["CN-000002"]["id"])
    drift = cli("stripe", "reconcile", "-o", "json", expect=10).json()["drift"]
    assert [(d["invoice"], d["drift"]) for d in drift] == [("CN-000002", "status")]


def test_refund_of_more_than_stripe_collected_is_refused_up_front(cli, tmp_path, fake, db_url):
    _pushed(cli, tmp_path, fake)
    (globex,) = stripe_invoices_for(fake, GLOBEX)
    fake.invoices[globex["id"]]["amount_paid_off_stripe"] = 4763  # paid outside Stripe
    before = table_counts(db_url)
    result = cli("invoices", "credit", GLOBEX, "--amount", "5", "--settle", "refund", "--reason", "x", "--yes",
                 expect=3)
    assert "--settle balance" in result.stderr
    assert table_counts(db_url) == before and fake.credit_notes == {}


def test_credit_before_push_goes_to_stripe_after_its_invoice(cli, tmp_path, fake, db_url):
    _setup(cli, tmp_path)
    cli("invoices", "credit", ACME, "--line", "1", "--reason", "base fee waived", "--yes")
    cli.env.update(stripe_env(fake))
    dry = cli("stripe", "push", "--dry-run", "-o", "json").json()
    assert dry["credit_notes"] == []  # its invoice is not in Stripe yet, not even in a dry run
    doc = cli("stripe", "push", "-o", "json").json()
    assert [(c["ref"], c["action"]) for c in doc["credit_notes"]] == [("CN-000001", "pushed")]
    (note,) = _stripe_notes(fake, "CN-000001")
    (invoice,) = stripe_invoices_for(fake, ACME)
    assert note["invoice"] == invoice["id"] and note["total"] == 2900 + 239  # 29.00 and its share of tax
    assert note["post_payment_amount"] == note["total"] and note["customer_balance_transaction"]  # paid: balance
    assert cli("stripe", "push", "-o", "json").json()["credit_notes"] == []
    cli("stripe", "reconcile")


def test_void_is_refused_for_an_invoice_paid_in_stripe(cli, tmp_path, fake, db_url):
    _pushed(cli, tmp_path, fake)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # what billctl recorded is stale: Stripe has it paid
        conn.execute(sa.text("UPDATE invoice SET stripe_status = 'open', stripe_amount_paid = NULL"))
    engine.dispose()
    result = cli("invoices", "void", GLOBEX, "--reason", "wrong plan", "--yes", expect=9)
    assert "paid in Stripe" in result.stderr and "billctl invoices credit" in result.stderr
    assert local_invoice(db_url, GLOBEX)["status"] == "finalized"
    assert local_invoice(db_url, GLOBEX)["stripe_status"] == "paid"  # refreshed from Stripe

    # partly paid in Stripe: refused too; the local record alone refuses it from then on
    (acme,) = stripe_invoices_for(fake, ACME)
    fake.invoices[acme["id"]].update({"amount_paid": 1000, "amount_remaining": 3763})
    assert "partly paid" in cli("invoices", "void", ACME, "--reason", "x", "--yes", expect=9).stderr
    assert fake.invoices[acme["id"]]["status"] == "open"
    cli.env.clear()
    assert "partly paid" in cli("invoices", "void", ACME, "--reason", "x", "--yes", expect=9).stderr


def test_void_of_a_pushed_invoice_without_a_key_is_refused(cli, tmp_path, fake, db_url):
    _pushed(cli, tmp_path, fake)
    (acme,) = stripe_invoices_for(fake, ACME)
    cli.env.clear()  # no Stripe key: billctl cannot know whether it was paid since
    result = cli("invoices", "void", ACME, "--reason", "x", "--yes", expect=4)
    assert "cannot check whether it was paid" in result.stderr
    cli.env.update(stripe_env(fake))
    posts = sum(1 for r in fake.request_log if r.method == "POST")
    dry = cli("invoices", "void", ACME, "--reason", "x", "--dry-run")
    assert "would be void" in dry.stderr
    assert sum(1 for r in fake.request_log if r.method == "POST") == posts
    assert local_invoice(db_url, ACME)["status"] == "finalized" and fake.invoices[acme["id"]]["status"] == "open"


def _credit(app, hook=None):  # type: ignore[no-untyped-def]
    from billctl.services import credit_notes

    return credit_notes.issue(app, GLOBEX, reason="sla breach", lines=[2], settle="refund", on_call=hook)


@pytest.mark.parametrize("later", [False, True], ids=["minutes-later", "days-later"])
def test_crash_after_every_stripe_call_of_credit_then_rerun(cli, tmp_path, db_url, later):
    """Kill `invoices credit` right after each Stripe call in turn (Stripe acted, billctl recorded
    nothing of it); re-running the same command, at once or days later (idempotency keys forgotten),
    leaves one local credit note and one Stripe credit note with its amounts and refund."""
    with FakeStripe(api_key_prefix="sk_test_billctl") as fake:
        _pushed(cli, tmp_path, fake)
        app = make_app(db_url, fake)
        probe = crash_after(10_000)
        _credit(app, probe)
        total = len(probe.calls)
        assert probe.calls == ["retrieve invoice", "retrieve invoice", "list invoice lines", "create credit note"]
        (invoice,) = stripe_invoices_for(fake, GLOBEX)
        for n in range(1, total + 1):
            fake.reset()
            _reset_local(db_url)
            _pushed_again(cli, fake, db_url)
            (invoice,) = stripe_invoices_for(fake, GLOBEX)
            with pytest.raises(SimulatedCrash):
                _credit(app, crash_after(n))
            if later:
                fake.advance(2 * 86400)
                fake.forget_idempotency_keys()
            result = _credit(app)
            assert result.stripe is not None and result.stripe.action != "failed", result.stripe
            local = _rows(db_url, "SELECT number, total_minor, stripe_credit_note_id FROM credit_note")
            assert len(local) == 1, (n, local)
            (number, total_minor, stripe_id) = local[0]
            remote = _stripe_notes(fake, number)
            assert [r["id"] for r in remote] == [stripe_id], (n, remote)
            assert remote[0]["total"] == total_minor == 1624
            assert remote[0]["refunds"][0]["amount_refunded"] == 1624
            assert fake.invoices[invoice["id"]]["post_payment_credit_notes_amount"] == 1624
        assert fake.server_errors == []


def _reset_local(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        for table in ("credit_note_line", "credit_note"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DELETE FROM counter WHERE name = 'credit_note'"))
        conn.execute(
            sa.text(
                "UPDATE invoice SET stripe_invoice_id = NULL, stripe_status = NULL, stripe_push_started_at = NULL, "
                "stripe_amount_paid = NULL, stripe_amount_remaining = NULL"
            )
        )
        conn.execute(sa.text("UPDATE invoice_line SET stripe_item_id = NULL"))
        conn.execute(sa.text("UPDATE tenant SET stripe_customer_id = NULL"))
    engine.dispose()


def _pushed_again(cli, fake: FakeStripe, db_url: str) -> None:  # type: ignore[no-untyped-def]
    fake.set_payment_outcome("acme", "fail")
    cli("stripe", "push")
    assert local_invoice(db_url, GLOBEX)["stripe_status"] == "paid"


# -- currencies: credit notes follow Stripe's rules, as invoices do ----------------------------------


@pytest.fixture(scope="module")
def open_in_every_currency(tmp_path_factory, sqlite_template):  # type: ignore[no-untyped-def]
    """Every currency of the table, finalized and pushed as invoices Stripe emails: open in Stripe."""
    from tests.fakestripe.billctl_harness import every_currency_pushed

    tmp = tmp_path_factory.mktemp("cn-currencies")
    with every_currency_pushed(tmp, sqlite_template, collection_method="send_invoice") as setup:
        yield setup


def _every_currency() -> list[str]:
    from billctl.core.currencies import CURRENCIES

    assert {"KWD", "ISK", "UGX", "JPY", "USD"} <= set(CURRENCIES)  # the special cases are all there
    return sorted(CURRENCIES)


@pytest.mark.parametrize("currency", _every_currency())
def test_credit_notes_in_every_currency_agree_with_stripe(open_in_every_currency, currency):
    """Push, pay 10 (major units) of the invoice in Stripe, then credit a line (with its share of
    tax), an --amount, and the rest as a refund. FakeStripe, with its own copy of Stripe's amount
    rules, accepts every credit note; each amount is a multiple of the currency's billing unit;
    what billctl stores from Stripe (credit note amounts, amount paid and remaining) and what
    Stripe holds are the same money; void reads the partial payment in the currency's units."""
    from decimal import ROUND_HALF_UP, Decimal

    from billctl.core.money import billing_unit, format_amount, from_minor
    from billctl.errors import Conflict
    from billctl.services import credit_notes
    from billctl.services import stripe_sync as svc
    from billctl.services.invoices import void_invoice
    from tests.fakestripe.billctl_harness import local_lines
    from tests.fakestripe.currencies import api_exponent, major

    fake, cli, app, outcomes = open_in_every_currency
    tenant = f"t-{currency.lower()}"
    number = outcomes[tenant]["ref"]
    (remote,) = stripe_invoices_for(fake, number)
    assert remote["status"] == "open", remote["status"]
    unit = billing_unit(currency)

    fake.pay_part(remote["id"], 10 * 10 ** api_exponent(currency))  # 10 of the currency, through Stripe
    with pytest.raises(Conflict, match=rf"partly paid \({format_amount(Decimal(10), currency)}\) in Stripe"):
        void_invoice(app, number, "wrong plan")
    local = local_invoice(cli.db_url, number)
    assert from_minor(local["stripe_amount_paid"], currency) == 10  # stored in billctl's minor units

    issued = [
        credit_notes.issue(app, number, reason="outage", lines=[2]),
        credit_notes.issue(app, number, reason="goodwill", amount="5"),
        credit_notes.issue(app, number, reason="cancelled", settle="refund"),
    ]
    notes = {row.number: (row, lines) for row, lines in credit_notes.notes_of(app, local["id"])}
    in_stripe = {c["id"]: c for c in fake.credit_notes.values()}
    for result in issued:
        assert result.stripe is not None and result.stripe.action == "pushed", (result.pending, result.stripe)
        row, lines = notes[result.note.number]
        remote_note = in_stripe[row.stripe_credit_note_id]
        assert remote_note["currency"] == currency.lower()
        assert major(remote_note["total"], currency) == from_minor(row.total_minor, currency)
        assert major(remote_note["pre_payment_amount"], currency) == from_minor(row.stripe_pre_payment_minor, currency)
        assert major(remote_note["post_payment_amount"], currency) == from_minor(
            row.stripe_post_payment_minor, currency
        )
        assert sorted(major(x["amount"], currency) for x in remote_note["lines"]["data"]) == sorted(
            from_minor(x.amount_minor, currency) for x in lines
        )
        for x in lines:
            assert from_minor(x.amount_minor, currency) % unit == 0, (x.kind, x.amount_minor)

    (_, base, _), (_, usage, _), (_, tax, _) = local_lines(cli.db_url, number)
    line_tax = next(x.amount_minor for x in notes[issued[0].note.number][1] if x.kind == "tax")
    share = Decimal(tax) * usage / (base + usage)  # the invoice's tax on the credited line, in minor units
    step = from_minor(1, currency)
    expected = (share * step / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP) * unit / step
    assert line_tax == expected  # rounded once, half-up, to the billing unit
    assert sum(row.tax_minor for row, _ in notes.values()) == tax  # every unit of tax credited, never more
    assert issued[1].note.total_minor == 5 / step

    # the rest went beyond what was still due by what the customer paid: that is refunded
    rest = in_stripe[notes[issued[2].note.number][0].stripe_credit_note_id]
    assert major(rest["post_payment_amount"], currency) == 10
    assert major(rest["refunds"][0]["amount_refunded"], currency) == 10
    after = fake.invoices[remote["id"]]
    assert (after["status"], after["amount_remaining"]) == ("paid", 0)

    gw = svc.gateway(app)
    svc.sync_status(app, gw)
    local = local_invoice(cli.db_url, number)
    assert from_minor(local["stripe_amount_paid"], currency) == major(after["amount_paid"], currency) == 10
    assert local["stripe_amount_remaining"] == 0
    assert svc.reconcile(app, gw, tenant_key=tenant).drifts == []


def test_credit_amounts_follow_the_billing_unit_of_the_currency(cli, tmp_path, db_url):
    """KWD bills to 0.01 (not its third decimal), ISK and UGX and JPY to whole units, USD to cents:
    a line's share of tax is rounded half-up to that, and an --amount finer than it is refused
    (exit 3) naming Stripe's rule, nothing written."""
    from billctl.core.money import billing_rule
    from tests.fakestripe.billctl_harness import currency_plan

    cli("db", "upgrade")
    # currency: (line 2's share of tax, an --amount too fine); 3.28 KWD × 14.75 / 43.75 = 1.10583 is
    # 1.110 KWD (not 1.106, which Stripe refuses); 3 ISK × 15 / 44 = 1.0227 is 1 ISK (not 1.02)
    cases = {
        "KWD": ("1.110", "1.005"),
        "ISK": ("1.00", "1.50"),
        "UGX": ("1", "1.5"),
        "JPY": ("1", "0.5"),
        "USD": ("1.11", "0.005"),
    }
    events = []
    for code in cases:
        tenant = f"t-{code.lower()}"
        cli("plans", "create", "--file", write_plan(tmp_path, code, currency_plan(code)))
        cli("tenants", "create", tenant, "--currency", code, "--tax-rate", "7.5")
        cli("tenants", "assign-plan", tenant, f"p-{code.lower()}", "--effective", "2026-10-01")
        events += bulk(tenant, 12_345)
    cli("usage", "import", events_file(tmp_path, events))
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    numbers = {d["tenant"]: d["number"] for d in cli("invoices", "list", "-o", "json").json()}
    before = table_counts(db_url)
    for code, (tax, too_fine) in cases.items():
        number = numbers[f"t-{code.lower()}"]
        line = cli("invoices", "credit", number, "--line", "2", "--reason", "x", "--dry-run", "-o", "json").json()
        assert line["tax"]["decimal"] == tax, code
        refused = cli("invoices", "credit", number, "--amount", too_fine, "--reason", "x", "--yes", expect=3)
        assert billing_rule(code) in refused.stderr, (code, refused.stderr)
    assert table_counts(db_url) == before
