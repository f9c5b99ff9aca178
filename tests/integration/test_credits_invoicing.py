"""Prepaid credits on invoices, end to end through the CLI on SQLite and PostgreSQL (issue 13, phase 2a):
the worked examples of docs/how-to/prepaid-credits.md finalized (promotional and purchased credits
with tax, two grants with different expiry, a grant that expires mid-period, a balance smaller than
the invoice, JPY); finalize twice draws once; preview shows what finalize writes; explain and
recompute rebuild the same lines from the stored credits; void gives the credits back once; a credit
note gives back what purchased credits paid, cash first; report revenue separates credits and cash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import BASIC, bulk, events_file, sql_rows, write_plan

NUMBER = "INV-2026-10-000001"


def flat_plan(currency: str, base_fee: str) -> str:
    """A plan whose charges are exactly its base fee for 100 calls (all of them included)."""
    return f"""
name = "flat"
currency = "{currency}"
base_fee = "{base_fee}"
included_units = 10000
[price]
model = "per_unit"
unit_price = "0.001"
"""


def month(cli, tmp_path: Path, *, charges: str, tax: str = "0", currency: str = "USD") -> None:  # type: ignore[no-untyped-def]
    """acme on a plan whose October charges are ``charges``, taxed at ``tax`` %."""
    cli("db", "upgrade")
    cli("plans", "create", "--file", write_plan(tmp_path, "flat", flat_plan(currency, charges)))
    cli("tenants", "create", "acme", "--tax-rate", tax, "--currency", currency)
    cli("tenants", "assign-plan", "acme", "flat", "--effective", "2026-09-01")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 100)))


def grant(cli, amount: str, kind: str, *extra: str) -> None:  # type: ignore[no-untyped-def]
    cli("credits", "grant", "acme", "--amount", amount, "--kind", kind, "--reason", f"{kind} {amount}",
        "--effective", "2026-10-01", *extra)  # fmt: skip


def finalize(cli) -> dict:  # type: ignore[no-untyped-def]
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    return cli("invoices", "show", NUMBER, "-o", "json").json()


def lines(doc: dict) -> list[tuple[str, str]]:
    """The invoice's lines but usage (100 calls, all included: a line of 0)."""
    return [(x["kind"], x["amount"]["decimal"]) for x in doc["lines"] if x["kind"] != "usage"]


def totals(doc: dict) -> tuple[str, str, str]:
    return doc["subtotal"]["decimal"], doc["tax"]["decimal"], doc["total"]["decimal"]


def ledger(db_url: str) -> list[tuple]:
    return sql_rows(db_url, "SELECT kind, grant_id, amount_minor, invoice_id, source FROM credit_ledger ORDER BY id")


EXAMPLES = [
    # (charges, tax %, grants, lines, (subtotal, tax, total))
    (
        "100.00", "8.25", [("30", "promotional")],
        [("base", "100.00"), ("credit", "-30.00"), ("tax", "5.78")], ("70.00", "5.78", "75.78"),
    ),
    (
        "100.00", "8.25", [("50", "purchased")],
        [("base", "100.00"), ("tax", "8.25"), ("credit", "-50.00")], ("100.00", "8.25", "58.25"),
    ),
    (
        "100.00", "8.25", [("30", "promotional"), ("500", "purchased")],
        [("base", "100.00"), ("credit", "-30.00"), ("tax", "5.78"), ("credit", "-75.78")], ("70.00", "5.78", "0.00"),
    ),
    ("44.00", "0", [("25", "purchased")], [("base", "44.00"), ("credit", "-25.00")], ("44.00", "0.00", "19.00")),
]  # fmt: skip


IDS = ["promo", "purchased", "both", "balance-smaller"]


@pytest.mark.parametrize("charges,tax,grants,expected,expected_totals", EXAMPLES, ids=IDS)
def test_worked_examples_finalized(cli, tmp_path, charges, tax, grants, expected, expected_totals):
    month(cli, tmp_path, charges=charges, tax=tax)
    for amount, kind in grants:
        grant(cli, amount, kind)
    doc = finalize(cli)
    assert lines(doc) == expected and totals(doc) == expected_totals
    assert sum(x["amount"]["minor"] for x in doc["lines"]) == doc["total"]["minor"]  # the lines add up to the total
    drawn = sum(-x["amount"]["minor"] for x in doc["lines"] if x["kind"] == "credit")
    balance = cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"]
    granted = sum(int(a) * 100 for a, _ in grants)
    assert balance == granted - drawn  # the balance is the ledger's sum: what was granted less what was drawn
    assert all(e[3] is not None for e in ledger(cli.db_url) if e[0] == "draw")
    if totals(doc)[2] == "19.00":
        assert balance == 0


def test_both_kinds_leave_the_purchased_remainder(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "500", "purchased")
    finalize(cli)
    balance = cli("credits", "balance", "acme", "-o", "json").json()[0]
    assert balance["purchased"]["decimal"] == "424.22" and balance["promotional"]["minor"] == 0


def test_two_grants_with_different_expiry_the_one_expiring_first_is_drawn_first(cli, tmp_path):
    month(cli, tmp_path, charges="30.00")
    grant(cli, "20", "promotional", "--expires", "2027-01-01")  # grant 1
    grant(cli, "20", "promotional", "--expires", "2026-12-01")  # grant 2: expires first
    doc = finalize(cli)
    credit = [(x["detail"]["grant_id"], x["amount"]["decimal"]) for x in doc["lines"] if x["kind"] == "credit"]
    assert credit == [(2, "-20.00"), (1, "-10.00")] and totals(doc) == ("0.00", "0.00", "0.00")


def test_a_grant_that_expires_mid_period_is_not_drawn_and_is_written_off(cli, tmp_path):
    month(cli, tmp_path, charges="40.00")
    grant(cli, "50", "promotional", "--expires", "2026-10-15")
    grant(cli, "10", "promotional", "--expires", "2026-11-01")
    doc = finalize(cli)
    assert lines(doc) == [("base", "40.00"), ("credit", "-10.00")] and totals(doc)[2] == "30.00"
    expired = cli("credits", "expire", "--period", "2026-10", "-o", "json").json()["expired"]
    assert [(x["grant"], x["amount"]["decimal"]) for x in expired] == [(1, "50.00")]
    assert cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"] == 0


def test_zero_decimal_currency(cli, tmp_path):
    month(cli, tmp_path, charges="12345", tax="10", currency="JPY")
    grant(cli, "1000", "promotional")
    grant(cli, "5000", "purchased")
    doc = finalize(cli)
    assert lines(doc) == [("base", "12345"), ("credit", "-1000"), ("tax", "1135"), ("credit", "-5000")]
    assert totals(doc) == ("11345", "1135", "7480") and doc["total"]["minor"] == 7480


def test_finalize_twice_draws_once_and_preview_shows_what_finalize_writes(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    preview = cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()
    dry = cli("invoices", "finalize", "--period", "2026-10", "--dry-run", "-o", "json").json()
    assert ledger(cli.db_url) == [("grant", 1, 3000, None, ""), ("grant", 2, 5000, None, "")]  # nothing written
    doc = finalize(cli)
    again = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()
    assert "already" in str(again)
    (shown,) = [t for t in preview["tenants"] if t["tenant"] == "acme"] if "tenants" in preview else preview["invoices"]
    assert [(x["kind"], x["amount"]) for x in shown["lines"]] == [(x["kind"], x["amount"]) for x in doc["lines"]]
    assert shown["total"] == doc["total"] and shown["fingerprint"] == doc["fingerprint"]
    assert str(doc["total"]["minor"]) in str(dry) and doc["fingerprint"] in str(dry)
    draws = [e for e in ledger(cli.db_url) if e[0] == "draw"]
    assert [(g, a) for _, g, a, _, _ in draws] == [(1, -3000), (2, -5000)]
    assert doc["total"]["decimal"] == "25.78"  # 100 - 30 + 5.78 tax - 50


def test_explain_and_recompute_rebuild_the_same_lines_from_the_stored_credits(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    doc = finalize(cli)
    assert [c["grant"] for c in doc_inputs(cli)["credits"]] == [1, 2]
    grant(cli, "999", "purchased")  # today's ledger changes: the invoice's credits do not
    explained = cli("invoices", "explain", NUMBER, "-o", "json").json()
    check = explained["verification"]
    assert check["problems"] == [] and check["inputs_reprice_to_same_lines"] and check["fingerprint_matches_inputs"]
    steps = {s["step"] for x in explained["lines"] for s in x["steps"]}
    assert {"promotional credits reduce the taxable amount", "tax on the taxable amount",
            "purchased credits settle the amount due"} <= steps  # fmt: skip
    recomputed = cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "json").json()
    (inv,) = recomputed["invoices"]
    assert not inv["changed"] and inv["same_inputs"] and inv["now"]["total"] == doc["total"]
    assert [x["status"] for x in inv["lines"]] == ["same"] * 5


def doc_inputs(cli) -> dict:  # type: ignore[no-untyped-def]
    return cli("invoices", "explain", NUMBER, "-o", "json").json()["inputs"]


def test_an_invoice_without_credits_keeps_its_inputs_document(cli, tmp_path):
    month(cli, tmp_path, charges="44.00")
    assert "credits" not in (inputs := finalize(cli) and doc_inputs(cli))
    assert list(inputs) == ["schema", "tenant", "period", "timezone", "currency", "tax_rate", "rounding", "segments",
                            "discounts", "adjustments"]  # fmt: skip


def test_void_gives_the_credits_back_once_and_a_new_invoice_draws_them_again(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    finalize(cli)
    cli("invoices", "void", NUMBER, "--reason", "wrong plan", "--yes")
    cli("invoices", "void", NUMBER, "--reason", "again", "--yes", expect=None)  # refused: it is void already
    back = [(g, a, s) for k, g, a, _, s in ledger(cli.db_url) if k == "reversal"]
    assert sorted(back) == [(1, 3000, "void"), (2, 5000, "void")]
    assert cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"] == 8000
    cli("invoices", "finalize", "--period", "2026-10", "--yes")
    second = cli("invoices", "show", "INV-2026-10-000002", "-o", "json").json()
    assert totals(second) == ("70.00", "5.78", "25.78")
    assert cli("credits", "balance", "acme", "-o", "json").json()[0]["balance"]["minor"] == 0


def test_a_credit_note_gives_back_cash_first_then_purchased_credits_once(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    doc = finalize(cli)  # billed 70.00 + 5.78 = 75.78: 50.00 paid with purchased credits, 25.78 due in cash
    assert doc["total"]["decimal"] == "25.78"
    cli("invoices", "credit", NUMBER, "--amount", "20", "--reason", "outage", "--yes")  # cash only
    assert [e for e in ledger(cli.db_url) if e[0] == "reversal"] == []
    note = cli("invoices", "credit", NUMBER, "--amount", "15", "--reason", "outage 2", "--yes", "-o", "json").json()
    assert note["credits_returned"]["decimal"] == "9.22"  # 5.78 cash, 9.22 credits
    back = [(g, a) for k, g, a, _, _ in ledger(cli.db_url) if k == "reversal"]
    assert back == [(2, 922)]
    cli("invoices", "credit", NUMBER, "--reason", "the rest", "--yes")  # 40.78 left: all purchased credits
    back = [(g, a) for k, g, a, _, _ in ledger(cli.db_url) if k == "reversal"]
    assert back == [(2, 922), (2, 4078)]  # never more than purchased credits paid; promotional ones stay used
    balance = cli("credits", "balance", "acme", "-o", "json").json()[0]
    assert balance["purchased"]["decimal"] == "50.00" and balance["promotional"]["minor"] == 0
    shown = cli("invoices", "show", NUMBER, "-o", "json").json()
    assert shown["left_to_credit"]["minor"] == 0


def test_report_revenue_separates_usage_credits_and_cash(cli, tmp_path):
    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    finalize(cli)
    report = cli("report", "revenue", "--period", "2026-10", "-o", "json").json()
    (usd,) = report["by_currency"]
    got = {k: usd[k]["decimal"] for k in ("usage", "promotional_credits", "revenue", "tax", "purchased_credits",
                                           "cash_due")}  # fmt: skip
    assert got == {"usage": "100.00", "promotional_credits": "30.00", "revenue": "70.00", "tax": "5.78",
                   "purchased_credits": "50.00", "cash_due": "25.78"}  # fmt: skip
    cli("invoices", "credit", NUMBER, "--amount", "35", "--reason", "outage", "--yes")  # 25.78 cash, 9.22 credits
    usd = cli("report", "revenue", "--period", "2026-10", "-o", "json").json()["by_currency"][0]
    usage, promo = usd["usage"]["minor"], usd["promotional_credits"]["minor"]
    tax, purchased, cash = usd["tax"]["minor"], usd["purchased_credits"]["minor"], usd["cash_due"]["minor"]
    assert (purchased, cash) == (5000 - 922, 0)
    assert usage - promo + tax - purchased == cash  # S - promotional + tax - purchased = cash due, net of notes


def test_bad_plan_data_fails_one_tenant_and_other_tenants_still_draw(cli, tmp_path):
    """One tenant's failure (plan beyond the bounds) does not stop another's credits being drawn."""
    from tests.helpers import plan_beyond_the_bounds

    month(cli, tmp_path, charges="44.00")
    cli("plans", "create", "--file", write_plan(tmp_path, "basic", BASIC))
    cli("tenants", "create", "beta")
    cli("tenants", "assign-plan", "beta", "basic", "--effective", "2026-09-01")
    cli("usage", "import", events_file(tmp_path, bulk("beta", 10), name="beta.ndjson"))
    grant(cli, "10", "purchased")
    plan_beyond_the_bounds(cli.db_url, "beta")
    cli("invoices", "finalize", "--period", "2026-10", "--yes", expect=None)
    assert [(k, a) for k, _, a, _, _ in ledger(cli.db_url)] == [("grant", 1000), ("draw", -1000)]


def test_documents_with_credits_match_their_schemas(cli, tmp_path):
    """Each -o json document that shows credits (credit lines, the revenue split, a credit note's
    credits returned) against its schema in docs/reference/schemas."""
    from tests.integration.test_json_schemas import problems

    month(cli, tmp_path, charges="100.00", tax="8.25")
    grant(cli, "30", "promotional")
    grant(cli, "50", "purchased")
    docs = {
        "invoices-preview": [cli("invoices", "preview", "--period", "2026-10", "-o", "json").json()],
        "invoices-finalize": [cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json").json()],
    }
    docs["invoices-credit"] = [
        cli("invoices", "credit", NUMBER, "--amount", "35", "--reason", "r", "--yes", "-o", "json").json()
    ]
    docs["invoices-show"] = [cli("invoices", "show", NUMBER, "-o", "json").json()]
    docs["invoices-explain"] = [cli("invoices", "explain", NUMBER, "-o", "json").json()]
    docs["invoices-recompute"] = [cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "json").json()]
    docs["report-revenue"] = [cli("report", "revenue", "--period", "2026-10", "-o", "json").json()]
    docs["credits-ledger"] = [cli("credits", "ledger", "acme", "-o", "json").json()]
    docs["invoices-export"] = [cli("invoices", "export", "--period", "2026-10", "-o", "json").json()]
    kinds = {(r["kind"], r["credit_note"] is not None) for r in docs["invoices-export"][0]}
    assert {("credit", False), ("credit", True)} <= kinds  # a prepaid credit line; a credit note's line
    assert any(x["kind"] == "credit" for x in docs["invoices-show"][0]["lines"])
    found = [p for name, documents in docs.items() for d in documents for p in problems(name, d)]
    assert not found, "\n".join(found[:40])


def test_recompute_after_late_usage_draws_the_stored_credits_on_todays_charges(cli, tmp_path):
    """Late usage raises the period's charges: recompute prices them now and draws the credits the
    invoice stored (what each grant had then), not today's ledger; explain still matches the invoice."""
    month(cli, tmp_path, charges="100.00")
    grant(cli, "30", "promotional")
    grant(cli, "500", "purchased")
    doc = finalize(cli)
    assert totals(doc) == ("70.00", "0.00", "0.00")
    cli("usage", "import", events_file(tmp_path, bulk("acme", 20_000, prefix="late"), name="late.ndjson"))
    (inv,) = cli("invoices", "recompute", "--period", "2026-10", "--diff", "-o", "json").json()["invoices"]
    assert inv["changed"] and inv["now"]["subtotal"]["decimal"] == "80.10"  # 110.10 of charges − 30.00
    changed = {(x["kind"], x["status"]) for x in inv["lines"]}
    assert ("usage", "changed") in changed and ("credit", "changed") in changed  # purchased covers 80.10 now
    assert inv["now"]["total"]["minor"] == 0
    check = cli("invoices", "explain", NUMBER, "-o", "json").json()["verification"]
    assert check["problems"] == [] and check["inputs_reprice_to_same_lines"]
