# Long because: one end-to-end story (finalize, push, close, credit notes, void, reconcile) told over the same helpers.
"""Prepaid credits end to end through the CLI against FakeStripe over HTTP, on SQLite and PostgreSQL:
the joins of the draw-down (finalize), the Stripe push, run-monthly, credit notes and void, checked
against each other. Stripe must charge exactly what billctl finalized (DESIGN.md invariants 4, 6, 9,
10, 11 and 14): its invoice adds up to billctl's, a zero-total invoice is paid at once and nothing
drifts, a credit note in Stripe never credits more than Stripe's (cash) total, and the ledger gets
the rest back, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import (
    TEST_KEY,
    assert_exactly_once,
    stripe_env,
    stripe_invoices_for,
    stripe_items_for,
    table_counts,
)
from tests.helpers import bulk, events_file, sql_rows, write_plan

pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")

TENANTS = {"acme": "100.00", "globex": "100.00", "initech": "44.00"}  # their October charges
TAX = "8.25"


def flat_plan(name: str, base_fee: str) -> str:
    """Charges of exactly ``base_fee`` for up to 10,000 calls (all included)."""
    return f"""
name = "{name}"
currency = "USD"
base_fee = "{base_fee}"
included_units = 10000
[price]
model = "per_unit"
unit_price = "0.001"
"""


def setup(cli: Cli, tmp_path: Path, tenants: dict[str, str] = TENANTS) -> None:
    """Each tenant on a plan of its own whose October charges are its amount, taxed at 8.25 %."""
    cli("db", "upgrade")
    events: list[dict] = []
    for key, charges in tenants.items():
        cli("plans", "create", "--file", write_plan(tmp_path, f"p-{key}", flat_plan(f"p-{key}", charges)))
        cli("tenants", "create", key, "--name", key.title(), "--email", f"billing@{key}.test", "--tax-rate", TAX)
        cli("tenants", "assign-plan", key, f"p-{key}", "--effective", "2026-09-01")
        events += bulk(key, 100)
    cli("usage", "import", events_file(tmp_path, events))


def grant(cli: Cli, tenant: str, amount: str, kind: str, *extra: str) -> None:
    cli("credits", "grant", tenant, "--amount", amount, "--kind", kind, "--reason", f"{kind} {amount}",
        "--effective", "2026-10-01", *extra)  # fmt: skip


def invoice_doc(cli: Cli, tenant: str, period: str = "2026-10") -> dict[str, Any]:
    rows = [i for i in cli("invoices", "list", "--period", period, "-o", "json").json() if i["tenant"] == tenant]
    (row,) = [i for i in rows if i["status"] != "void"] or rows  # the live one, else the void one
    return cli("invoices", "show", row["number"], "-o", "json").json()


def ledger(db_url: str, tenant: str | None = None) -> list[tuple]:
    where = f"WHERE t.key = '{tenant}'" if tenant else ""
    return sql_rows(
        db_url,
        "SELECT t.key, l.kind, l.grant_id, l.amount_minor, l.source FROM credit_ledger l "
        f"JOIN tenant t ON t.id = l.tenant_id {where} ORDER BY l.id",
    )


def balance(db_url: str, tenant: str) -> int:
    return sum(e[3] for e in ledger(db_url, tenant))


def no_drift(cli: Cli) -> None:
    doc = cli("stripe", "reconcile", "-o", "json").json()
    assert doc["drift"] == [], doc["drift"]


def check_stripe_equals_billctl(fake: FakeStripe, doc: dict[str, Any]) -> dict[str, Any]:
    """Stripe's invoice for the local one: the same total, and its items give billctl's subtotal
    (charges and promotional credits), tax (billctl's tax line) and purchased credits."""
    (remote,) = stripe_invoices_for(fake, doc["number"])
    items = {int(i["metadata"]["billctl_line"]): i for i in stripe_items_for(fake, remote["id"])}
    lines = dict(enumerate(doc["lines"], start=1))  # positions 1..n, in order
    assert sorted(items) == sorted(lines)
    for position, line in lines.items():
        item = items[position]
        assert (item["amount"], item["metadata"]["kind"], item["discountable"]) == (
            line["amount"]["minor"],
            line["kind"],
            False,
        )
    tax_at = max((p for p, x in lines.items() if x["kind"] == "tax"), default=None)
    before_tax = sum(items[p]["amount"] for p in lines if tax_at is None or p < tax_at)
    tax = sum(items[p]["amount"] for p in lines if lines[p]["kind"] == "tax")
    assert (before_tax, tax) == (doc["subtotal"]["minor"], doc["tax"]["minor"])
    assert remote["subtotal"] == remote["total"] == doc["total"]["minor"]  # billctl's tax is an item of its own
    assert remote["total_taxes"] in ([], None) and remote["discounts"] == [] and remote["total_discount_amounts"] == []
    return remote


# ------------------------------------------------------------------ 1. finalize with credits, push


def test_credits_with_tax_pushed_stripe_totals_equal_billctl_and_zero_total_is_paid(cli, tmp_path, fake, db_url):
    """acme: promotional 30 and purchased 50 on 100.00 + 8.25 % (75.78 billed, 25.78 due); globex:
    covered in full (total 0.00); initech: no credits. A coupon on every Stripe customer changes
    nothing; the zero invoice is paid in Stripe at once, sync-status and reconcile agree."""
    setup(cli, tmp_path)
    grant(cli, "acme", "30", "promotional")
    grant(cli, "acme", "50", "purchased")
    grant(cli, "globex", "30", "promotional")
    grant(cli, "globex", "500", "purchased")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    acme, globex, initech = (invoice_doc(cli, t) for t in ("acme", "globex", "initech"))
    assert (acme["subtotal"]["minor"], acme["tax"]["minor"], acme["total"]["minor"]) == (7000, 578, 2578)
    assert (globex["subtotal"]["minor"], globex["tax"]["minor"], globex["total"]["minor"]) == (7000, 578, 0)
    assert initech["total"]["minor"] == 4763  # 44.00 + 3.63

    cli.env.update(stripe_env(fake))
    cli("stripe", "sync-customers")
    client = fake.client(TEST_KEY)
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "forever"})
    for customer in list(fake.customers):
        fake.give_customer_discount(customer, coupon.id)

    doc = cli("stripe", "push", "-o", "json").json()
    outcomes = {o["tenant"]: o for o in doc["invoices"]}
    assert {t: o["action"] for t, o in outcomes.items()} == dict.fromkeys(TENANTS, "pushed")
    assert doc.get("failed", []) == [] and all(not o.get("failed") for o in doc["invoices"])
    remotes = {}
    for tenant, local in (("acme", acme), ("globex", globex), ("initech", initech)):
        remotes[tenant] = check_stripe_equals_billctl(fake, local)
        assert_exactly_once(fake, db_url, local["number"], tenant)
        assert outcomes[tenant]["total"]["minor"] == local["total"]["minor"]
    assert remotes["globex"]["status"] == "paid" and remotes["globex"]["amount_due"] == 0
    assert outcomes["globex"]["status"] == "paid"
    assert "zero amount" in outcomes["globex"]["note"]
    assert (remotes["acme"]["amount_due"], remotes["initech"]["amount_due"]) == (2578, 4763)
    credit_items = [
        (i["amount"], i["metadata"]["billctl_credit_grant"])
        for i in stripe_items_for(fake, remotes["acme"]["id"])
        if i["metadata"]["kind"] == "credit"
    ]
    assert sorted(credit_items) == [(-5000, "2"), (-3000, "1")]

    status = cli("stripe", "sync-status", "-o", "json").json()
    assert status["attention"] == []
    for tenant, local in (("acme", acme), ("globex", globex), ("initech", initech)):
        (row,) = sql_rows(db_url, f"SELECT stripe_status FROM invoice WHERE number = '{local['number']}'")
        assert row[0] == remotes[tenant]["status"]
    no_drift(cli)
    again = cli("stripe", "push", "-o", "json").json()  # nothing left to do, nothing sent twice
    assert again["invoices"] == []
    assert len(fake.invoices) == 3
    # the balances: what was granted less what was drawn, once
    assert balance(db_url, "acme") == 0 and balance(db_url, "globex") == 50000 - 7578


# ------------------------------------------------------------------ 2. run-monthly with credits and Stripe


def _stripe_state(fake: FakeStripe) -> tuple:
    return (
        sorted((i["metadata"].get("billctl_invoice"), i["status"], i["total"]) for i in fake.invoices.values()),
        len(fake.invoiceitems),
        len(fake.customers),
    )


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What a close says it does (or, dry, would do), in terms a dry run and a real run share."""
    return {
        "invoices": sorted((i["tenant"], i["total"]["minor"]) for i in doc["invoices"]),
        "pushed": sorted(p["tenant"] for p in doc["pushed"]),
        "expired": sorted((x["tenant"], x["grant"], x["amount"]["minor"], x["state"]) for x in doc["credits_expired"]),
        "alerts": sorted((a["tenant"], a["available"]["minor"]) for a in doc["credit_alerts"]),
    }


def test_run_monthly_with_credits_dry_run_is_the_real_run_and_a_rerun_changes_nothing(cli, tmp_path, fake, db_url):
    """acme: 30 promotional expiring mid-October (not drawn, written off) and 50 purchased; globex:
    500 purchased (its invoice is 0.00); initech: 200 promotional expiring as October ends (it
    covers October: 100 drawn... of 44.00, the rest written off by the close). The dry run plans
    exactly what the real run then does; the re-run draws nothing, sends nothing."""
    setup(cli, tmp_path)
    grant(cli, "acme", "30", "promotional", "--expires", "2026-10-15")
    grant(cli, "acme", "50", "purchased")
    grant(cli, "globex", "500", "purchased")
    grant(cli, "initech", "200", "promotional", "--expires", "2026-11-01")
    cli.env.update(stripe_env(fake, BILLCTL_MONTHLY_DRAIN_STREAM="false", BILLCTL_CREDITS_ALERT_BELOW="USD=50"))
    granted = ledger(db_url)
    before = (table_counts(db_url), _stripe_state(fake))

    plan = cli("run-monthly", "--period", "2026-10", "--dry-run", "-o", "json").json()
    assert plan["dry_run"] is True and plan["exit_code"] == 0
    assert (table_counts(db_url), _stripe_state(fake)) == before and ledger(db_url) == granted
    assert [r.method for r in fake.request_log if r.method != "GET"] == []

    report = cli("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert report["exit_code"] == 0 and not report["failed"] and not report["held"]
    assert {s["step"]: s["state"] for s in report["steps"]} == {
        **{s["step"]: "done" for s in report["steps"]},
        "usage": "skipped",  # monthly.drain_stream = false
    }
    expected = {
        "invoices": [("acme", 10825 - 5000), ("globex", 0), ("initech", 0)],
        "pushed": ["acme", "globex", "initech"],
        "expired": [("acme", 1, 3000, "written off"), ("initech", 4, 20000 - 4400, "written off")],
        "alerts": [("acme", 0), ("initech", 0)],
    }
    assert _summary(report) == expected
    assert _summary(plan) == expected  # the dry run showed what the real run did
    for tenant in TENANTS:
        doc = invoice_doc(cli, tenant)
        check_stripe_equals_billctl(fake, doc)
        assert_exactly_once(fake, db_url, doc["number"], tenant)
    assert balance(db_url, "acme") == 0 and balance(db_url, "globex") == 50000 - 10825
    assert balance(db_url, "initech") == 0
    draws = [e for e in ledger(db_url) if e[1] == "draw"]
    assert sorted((e[0], e[3]) for e in draws) == [("acme", -5000), ("globex", -10825), ("initech", -4400)]
    no_drift(cli)

    state = (ledger(db_url), _stripe_state(fake))
    posts = sum(1 for r in fake.request_log if r.method == "POST")
    again = cli("run-monthly", "--period", "2026-10", "--yes", "-o", "json").json()
    assert again["exit_code"] == 0
    assert {i["outcome"] for i in again["invoices"]} == {"already finalized"}
    assert again["credits_expired"] == [] and again["pushed"] == []
    assert (ledger(db_url), _stripe_state(fake)) == state  # no second draw, no second write-off, no second invoice
    assert sum(1 for r in fake.request_log if r.method == "POST") == posts
    no_drift(cli)


# ------------------------------------------------------------------ 3. credit notes and void after the push


def _stripe_notes(fake: FakeStripe, stripe_invoice: str) -> list[dict[str, Any]]:
    return sorted(
        (n for n in fake.credit_notes.values() if n["invoice"] == stripe_invoice and n["status"] != "void"),
        key=lambda n: n["created"],
    )


def _pushed_with_purchased_credits(cli: Cli, tmp_path: Path, fake: FakeStripe, collection: str) -> dict[str, Any]:
    """acme: 100.00 + 8.25 % tax, 50.00 of it paid with purchased credits: 58.25 due, pushed to Stripe
    (charged at once: paid; sent: open)."""
    setup(cli, tmp_path, {"acme": "100.00"})
    grant(cli, "acme", "50", "purchased")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli.env.update(stripe_env(fake, BILLCTL_STRIPE_COLLECTION_METHOD=collection))
    cli("stripe", "push")
    doc = invoice_doc(cli, "acme")
    assert (doc["subtotal"]["minor"], doc["tax"]["minor"], doc["total"]["minor"]) == (10000, 825, 5825)
    remote = check_stripe_equals_billctl(fake, doc)
    assert remote["status"] == ("paid" if collection == "charge_automatically" else "open")
    return doc


@pytest.mark.parametrize("collection", ["send_invoice", "charge_automatically"], ids=["open", "paid"])
def test_credit_notes_credit_the_cash_in_stripe_and_the_rest_back_to_the_purchased_grant(
    cli, tmp_path, fake, db_url, collection
):
    """Billed 108.25, paid 50.00 with purchased credits, 58.25 due in cash (Stripe's total). A note of
    70.00: 58.25 in Stripe, 11.75 back to the grant; then the rest (38.25): all back to the grant,
    nothing more to credit in Stripe. The numbers agree: local notes, Stripe's notes, the ledger;
    push and reconcile find nothing to do."""
    doc = _pushed_with_purchased_credits(cli, tmp_path, fake, collection)
    number = doc["number"]
    stripe_id = stripe_invoices_for(fake, number)[0]["id"]

    before = (table_counts(db_url), len(fake.credit_notes))
    posts = sum(1 for r in fake.request_log if r.method == "POST")
    dry = cli("invoices", "credit", number, "--amount", "70", "--reason", "outage", "--dry-run", "-o", "json").json()
    assert dry["credits_returned"]["minor"] == 1175 and dry["stripe"]["action"] == "pushed", dry["stripe"]
    assert (table_counts(db_url), len(fake.credit_notes)) == before
    assert sum(1 for r in fake.request_log if r.method == "POST") == posts
    first = cli("invoices", "credit", number, "--amount", "70", "--reason", "outage", "--yes", "-o", "json").json()
    assert first["total"]["minor"] == 7000 and first["credits_returned"]["minor"] == 1175
    assert first["stripe"]["action"] == "pushed", first["stripe"]
    (remote,) = _stripe_notes(fake, stripe_id)
    assert remote["total"] == 5825  # only the cash: Stripe's invoice never billed the credits
    assert balance(db_url, "acme") == 1175

    rest = cli("invoices", "credit", number, "--reason", "goodwill", "--yes", "-o", "json").json()
    assert rest["total"]["minor"] == 10825 - 7000 and rest["credits_returned"]["minor"] == 3825
    assert rest["left_to_credit"]["minor"] == 0
    assert (rest["stripe"]["action"], rest["stripe"]["status"], rest["stripe"]["credit_note"]) == (
        "credits only",
        "credits only",
        None,
    )
    assert len(_stripe_notes(fake, stripe_id)) == 1  # nothing of it was paid in cash: nothing to credit in Stripe
    assert balance(db_url, "acme") == 5000  # every purchased credit the invoice drew is back, once
    returned = [(e[1], e[3], e[4]) for e in ledger(db_url, "acme") if e[1] == "reversal"]
    assert returned == [
        ("reversal", 1175, f"credit_note:{first['number']}"),
        ("reversal", 3825, f"credit_note:{rest['number']}"),
    ]
    # local notes = Stripe's note (cash) + the ledger's reversals (credits)
    notes = cli("invoices", "credit-notes", "--invoice", number, "-o", "json").json()
    local_total = sum(n["total"]["minor"] for n in notes)
    assert local_total == 10825 == sum(n["total"] for n in _stripe_notes(fake, stripe_id)) + 1175 + 3825
    cash = [n["stripe"] for n in notes]
    assert [(s["credit_note"], s["status"]) for s in cash] == [(remote["id"], "issued"), (None, "credits only")]
    assert sum((s[k] or {"minor": 0})["minor"] for k in ("pre_payment", "post_payment") for s in cash) == 5825

    again = cli("stripe", "push", "-o", "json").json()  # nothing pending: the credits-only note is done
    assert again["credit_notes"] == []
    assert len(_stripe_notes(fake, stripe_id)) == 1
    cli("stripe", "sync-status")
    no_drift(cli)


def test_void_of_a_pushed_unpaid_invoice_with_credits_voids_it_in_stripe_and_returns_the_credits_once(
    cli, tmp_path, fake, db_url
):
    doc = _pushed_with_purchased_credits(cli, tmp_path, fake, "send_invoice")
    number = doc["number"]
    assert balance(db_url, "acme") == 0
    cli("invoices", "void", number, "--reason", "wrong plan", "--yes")
    (remote,) = stripe_invoices_for(fake, number)
    assert remote["status"] == "void"
    assert invoice_doc(cli, "acme")["status"] == "void"
    assert balance(db_url, "acme") == 5000
    cli("invoices", "void", number, "--reason", "again", "--yes", expect=9)  # refused: and nothing comes back twice
    assert balance(db_url, "acme") == 5000
    assert [(e[1], e[3]) for e in ledger(db_url, "acme")] == [("grant", 5000), ("draw", -5000), ("reversal", 5000)]
    assert cli("stripe", "push", "-o", "json").json()["invoices"] == []
    cli("stripe", "sync-status")
    no_drift(cli)
    # the period finalized again draws the credits again, once, and its new invoice is pushed beside the void one
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    redo = invoice_doc(cli, "acme")
    assert redo["number"] != number and redo["total"]["minor"] == 5825 and balance(db_url, "acme") == 0
    cli("stripe", "push")
    check_stripe_equals_billctl(fake, redo)
    assert sorted(i["status"] for i in fake.invoices.values()) == ["open", "void"]
    cli("stripe", "sync-status")
    no_drift(cli)


def test_line_credit_notes_with_credits_and_a_zero_total_invoice_agree_with_stripe(cli, tmp_path, fake, db_url):
    """acme: 50 purchased (108.25 billed, 58.25 due): its base line credited with its tax share
    (108.25) is more than Stripe's total: Stripe credits the 58.25 cash (one custom line: Stripe's
    base item cannot take 108.25), the rest goes back to the purchased grant. globex: all of it paid
    with credits (total 0.00, paid in Stripe at once): a credit note gives back purchased credits only
    and sends nothing to Stripe. initech (no credits): a line credit note is Stripe line for line, as
    before."""
    setup(cli, tmp_path)
    grant(cli, "acme", "50", "purchased")
    grant(cli, "globex", "500", "purchased")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    cli.env.update(stripe_env(fake))
    cli("stripe", "push")
    docs = {t: invoice_doc(cli, t) for t in TENANTS}
    remotes = {t: check_stripe_equals_billctl(fake, d) for t, d in docs.items()}
    assert [r["status"] for r in remotes.values()] == ["paid", "paid", "paid"]

    acme = cli("invoices", "credit", docs["acme"]["number"], "--line", "1", "--reason", "x", "--yes", "-o", "json")
    note = acme.json()
    assert (note["total"]["minor"], note["credits_returned"]["minor"]) == (10825, 5000)
    (stripe_note,) = _stripe_notes(fake, remotes["acme"]["id"])
    assert (stripe_note["total"], stripe_note["post_payment_amount"]) == (5825, 5825)  # paid: all of it after payment
    assert [x["type"] for x in stripe_note["lines"]["data"]] == ["custom_line_item"]

    globex = cli("invoices", "credit", docs["globex"]["number"], "--reason", "x", "--yes", "-o", "json").json()
    assert globex["total"]["minor"] == 10825 and globex["credits_returned"]["minor"] == 10825
    assert globex["stripe"]["action"] == "credits only" and _stripe_notes(fake, remotes["globex"]["id"]) == []
    assert balance(db_url, "globex") == 50000

    initech = cli(
        "invoices", "credit", docs["initech"]["number"], "--line", "1", "--reason", "x", "--yes", "-o", "json"
    )
    assert initech.json()["credits_returned"]["minor"] == 0
    (plain,) = _stripe_notes(fake, remotes["initech"]["id"])
    assert plain["total"] == 4763 and [x["type"] for x in plain["lines"]["data"]] == [
        "invoice_line_item",
        "invoice_line_item",
    ]

    assert cli("stripe", "push", "-o", "json").json()["credit_notes"] == []
    cli("stripe", "sync-status")
    no_drift(cli)
    assert sum(e[3] for e in ledger(db_url) if e[1] == "reversal") == note["credits_returned"]["minor"] + 10825


def test_refund_of_an_invoice_paid_partly_with_credits_refunds_the_cash_only(cli, tmp_path, fake, db_url):
    """Charged 58.25 by card, 50.00 paid with purchased credits: crediting the whole invoice with
    --settle refund refunds the 58.25 Stripe collected and gives the 50.00 back to the grant."""
    doc = _pushed_with_purchased_credits(cli, tmp_path, fake, "charge_automatically")
    note = cli(
        "invoices", "credit", doc["number"], "--settle", "refund", "--reason", "cancelled", "--yes", "-o", "json"
    ).json()
    assert (note["total"]["minor"], note["credits_returned"]["minor"]) == (10825, 5000)
    (remote,) = stripe_invoices_for(fake, doc["number"])
    (stripe_note,) = _stripe_notes(fake, remote["id"])
    assert stripe_note["total"] == 5825 and fake.invoices[remote["id"]]["_refunded"] == 5825
    assert balance(db_url, "acme") == 5000
    no_drift(cli)


def test_credit_notes_issued_before_the_push_follow_the_invoice_with_their_cash_part(cli, tmp_path, fake, db_url):
    setup(cli, tmp_path, {"acme": "100.00"})
    grant(cli, "acme", "50", "purchased")
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    number = invoice_doc(cli, "acme")["number"]
    cli.env.update(stripe_env(fake))
    first = cli("invoices", "credit", number, "--amount", "70", "--reason", "a", "--yes", "-o", "json").json()
    rest = cli("invoices", "credit", number, "--reason", "b", "--yes", "-o", "json").json()
    assert [n["stripe"]["action"] for n in (first, rest)] == ["pending", "pending"]
    assert balance(db_url, "acme") == 5000  # 11.75 + 38.25 back at once, whatever Stripe does later

    doc = cli("stripe", "push", "-o", "json").json()
    assert [o["action"] for o in doc["invoices"]] == ["pushed"]
    assert [(o["ref"], o["action"], o["total"]["minor"]) for o in doc["credit_notes"]] == [
        (first["number"], "pushed", 5825),
        (rest["number"], "credits only", 0),
    ]
    (remote,) = stripe_invoices_for(fake, number)
    assert [n["total"] for n in _stripe_notes(fake, remote["id"])] == [5825]
    assert cli("stripe", "push", "-o", "json").json()["credit_notes"] == []
    cli("stripe", "sync-status")
    no_drift(cli)
