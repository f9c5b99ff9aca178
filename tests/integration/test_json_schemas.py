"""Every `-o json` document matches its published JSON Schema (docs/reference/schemas/), on real output.

One scenario per database (SQLite, PostgreSQL) runs every command that has an --output option on
the quickstart's month (sample plans, tenants and events, closed) plus what the other variants of
the documents need: late usage and a bad line, a burst for the anomaly check, a voided and
re-finalized invoice, a held one released, a push that fails then succeeds, the Redis stream with a
dead letter, and Stripe (FakeStripe).
The commands are enumerated from the Typer app, so a new `-o json` command without a schema, or
missing from the scenario, fails here.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES
from tests.helpers import events_file

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "reference" / "schemas"

pytestmark = pytest.mark.usefixtures("fast_stripe_backoff")


@cache
def reference() -> Any:
    """scripts/gen_reference.py: the one walk over the Typer app that finds the -o json commands."""
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@cache
def validator(name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.json"):
        registry = registry.with_resource(path.name, Resource.from_contents(json.loads(path.read_text())))
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def problems(name: str, document: Any) -> list[str]:
    return [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(name).iter_errors(document)
    ]


def test_every_json_command_has_a_strict_schema():
    commands = reference().json_commands()
    assert len(commands) >= 30, commands
    names = {reference().schema_name(path) for path in commands}
    missing = sorted(n for n in names if not (SCHEMAS / f"{n}.json").exists())
    assert not missing, f"-o json commands without a schema in docs/reference/schemas: {missing}"
    extra = sorted(p.stem for p in SCHEMAS.glob("*.json") if p.stem not in names | {"common"})
    assert not extra, f"schemas of no -o json command: {extra}"
    for name in sorted(names):
        schema = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema", name
        assert schema.get("description"), f"{name}: says what the document is"
        top = schema["items"] if schema.get("type") == "array" else schema
        assert top.get("type") == "object" or "$ref" in top, f"{name}: a document of known shape, not {{}}"
        if "$ref" not in top:
            assert top.get("required") and top.get("additionalProperties") is False, f"{name}: keys are pinned"


def test_a_schema_catches_drift():
    """The schemas are not `{}`: a float for money, a missing key or an extra one fails."""
    good = {"minor": 7874, "currency": "USD", "decimal": "78.74"}
    doc = {
        "number": "INV-2026-10-000001",
        "tenant": "acme",
        "period": "2026-10",
        "status": "finalized",
        "currency": "USD",
        "total": good,
        "credited": {"minor": 0, "currency": "USD", "decimal": "0.00"},
        "finalized_at": "2026-11-25T12:53:00+00:00",
        "stripe_error": None,
    }
    assert problems("invoices-list", [doc]) == []
    assert problems("invoices-list", [{**doc, "total": 78.74}])
    assert problems("invoices-list", [{**doc, "total": {**good, "minor": 78.74}}])
    assert problems("invoices-list", [{**doc, "total": {**good, "decimal": 78.74}}])
    assert problems("invoices-list", [{k: v for k, v in doc.items() if k != "tenant"}])
    assert problems("invoices-list", [{**doc, "surprise": 1}])
    assert problems("invoices-list", [{**doc, "period": "2026-13"}])


# ------------------------------------------------------------------------------------------ scenario


def _late_and_bad(tmp_path: Path) -> str:
    """Late October usage for globex (an adjustment), a duplicate, and one line that is rejected."""
    events = [
        {"tenant_id": "globex", "endpoint": "/v1/search", "ts": "2026-10-20T10:00:00Z", "units": 20000,
         "event_id": "late-1"},
        {"tenant_id": "globex", "endpoint": "/v1/search", "ts": "2026-10-20T10:00:00Z", "units": 20000,
         "event_id": "late-1"},
        {"tenant_id": "nobody", "units": 1, "event_id": "x-1", "ts": "2026-10-20T10:00:00Z"},
    ]  # fmt: skip
    return events_file(tmp_path, events, "late.ndjson")


def _burst(tmp_path: Path) -> str:
    """18,000 units from umbrella in one hour where it usually uses about 20: an anomaly."""
    events = [
        {"tenant_id": "umbrella", "endpoint": "/v1/ocr", "ts": f"2026-10-30T15:{m:02d}:00Z", "units": 300,
         "event_id": f"burst-{m}"}
        for m in range(60)
    ]  # fmt: skip
    return events_file(tmp_path, events, "burst.ndjson")


def run_scenario(cli: Any, tmp_path: Path, fake: Any, redis_url: str, stream: str) -> dict[str, list[Any]]:
    """Every -o json command, real output, keyed by schema name."""
    import redis

    from tests.fakestripe.billctl_harness import stripe_env

    shutil.copytree(SAMPLES, tmp_path / "samples")
    tour = cli("quickstart", str(tmp_path / "unused"), "--dry-run").stdout.splitlines()[1:]
    cli.env["BILLCTL_MONTHLY_DRAIN_STREAM"] = "false"
    for line in tour:  # the quickstart's own steps, on this test's database
        cli(*shlex.split(line, comments=True)[1:])
    del cli.env["BILLCTL_MONTHLY_DRAIN_STREAM"]

    docs: dict[str, list[Any]] = {}

    def j(*args: str, expect: int | tuple[int, ...] = 0) -> Any:
        result = cli(*args, "-o", "json", expect=None)
        allowed = expect if isinstance(expect, tuple) else (expect,)
        assert result.exit_code in allowed, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        path = [a for a in args if not a.startswith("-")]
        for candidates in sorted(reference().json_commands(), key=len, reverse=True):
            if tuple(path[: len(candidates)]) == candidates:
                document = result.json()
                docs.setdefault(reference().schema_name(candidates), []).append(document)
                return document
        raise AssertionError(f"{args} is not a -o json command")

    j("config", "show")
    j("db", "status")
    j("tenants", "create", "zed", "--name", "Zed Ltd", "--tax-rate", "5")  # no plan: skipped when billing
    j("tenants", "list")
    j("tenants", "show", "umbrella")
    j("discounts", "list", "umbrella")
    j("plans", "list", "--all")
    j("plans", "show", "pro")
    j("plans", "show", "business-eur")
    j("credits", "grant", "acme", "--amount", "100", "--kind", "promotional", "--reason", "sign-up", "--expires",
      "2027-01-01")  # fmt: skip
    j("credits", "grant", "acme", "--amount", "5", "--kind", "purchased", "--reason", "top-up", "--dry-run")
    j("credits", "balance")
    j("credits", "ledger", "acme")
    j("credits", "alerts")
    cli.env["BILLCTL_CREDITS_ALERT_BELOW"] = "USD=1000"
    j("credits", "alerts", expect=10)
    del cli.env["BILLCTL_CREDITS_ALERT_BELOW"]
    j("credits", "expire", "--period", "2026-10", "--dry-run")
    j("usage", "import", _late_and_bad(tmp_path))
    j("usage", "import", _burst(tmp_path), "--dry-run")
    j("usage", "import", _burst(tmp_path))
    j("usage", "show", "--tenant", "acme", "--period", "2026-10")
    j("usage", "top", "--period", "2026-10")
    j("usage", "anomalies", "--at", "2026-10-30T15:00Z", expect=10)
    j("usage", "anomalies", "--at", "2026-10-12T03:00Z")
    j("invoices", "preview", "--period", "2026-10")
    j("invoices", "preview", "--period", "2026-11")  # globex carries the late usage as an adjustment
    j("invoices", "list")
    j("invoices", "show", "INV-2026-10-000001")
    j("invoices", "explain", "INV-2026-10-000003")
    j("invoices", "recompute", "--period", "2026-10")
    j("invoices", "recompute", "--period", "2026-10", "--diff")
    j("invoices", "export", "--period", "2026-10")
    j("report", "revenue", "--period", "2026-10")
    cli("invoices", "void", "INV-2026-10-000005", "--reason", "wrong tax rate", "--yes")
    j("invoices", "finalize", "--period", "2026-10", "--dry-run")
    j("invoices", "finalize", "--period", "2026-10", "--yes")
    j("invoices", "show", "INV-2026-10-000005")  # void

    # Stripe, against FakeStripe: acme pushed by hand first (so the others drift), the rest by the
    # close; umbrella's card fails, then succeeds; initech re-finalized above EUR 250: held, then released
    cli.env.update(stripe_env(fake))
    fake.set_payment_outcome("umbrella", "fail")
    j("stripe", "check")
    cli("invoices", "void", "INV-2026-10-000003", "--reason", "re-rate", "--yes")
    j("stripe", "sync-customers", "--tenant", "acme", "--dry-run")
    j("stripe", "sync-customers", "--tenant", "acme")
    j("stripe", "push", "--period", "2026-10", "--tenant", "acme", "--dry-run")
    fake.inject(method="POST", path_regex=r"/finalize$", status=400)  # the first push fails: stripe_error
    j("stripe", "push", "--period", "2026-10", "--tenant", "acme", expect=6)
    assert j("invoices", "show", "INV-2026-10-000001")["stripe_error"]
    j("invoices", "list", "--tenant", "acme")
    j("stripe", "push", "--period", "2026-10", "--tenant", "acme")
    j("invoices", "credit", "INV-2026-10-000001", "--line", "2", "--reason", "outage", "--yes")  # in Stripe at once
    j("invoices", "credit", "INV-2026-10-000002", "--amount", "5", "--reason", "goodwill", "--dry-run")
    j("invoices", "credit", "INV-2026-10-000002", "--amount", "5", "--reason", "goodwill", "--yes")  # local first
    j("stripe", "reconcile", expect=10)
    cli.env.update({"BILLCTL_MONTHLY_HOLD_ABOVE": "EUR=250", "BILLCTL_MONTHLY_DRAIN_STREAM": "false"})
    j("run-monthly", "--period", "2026-10", "--dry-run", expect=6)
    j("run-monthly", "--period", "2026-10", "--yes", expect=6)
    (held,) = (i["number"] for i in j("invoices", "list", "--status", "held"))
    j("invoices", "release", held, "--dry-run")
    j("invoices", "release", held, "--yes")
    j("stripe", "sync-status")  # umbrella needs attention
    fake.set_payment_outcome("umbrella", "succeed")
    fake.advance(3 * 86400 + 1)  # Stripe retries the card
    j("stripe", "sync-status")  # umbrella: payment_failed -> paid
    j("stripe", "reconcile")
    j("stripe", "push")  # nothing left to do
    j("credits", "purchase", "acme", "--amount", "20", "--reason", "top-up", "--dry-run")
    j("credits", "purchase", "acme", "--amount", "20", "--reason", "top-up", "--expires", "2030-01-01")  # paid
    j("invoices", "credit-notes")
    j("invoices", "show", "INV-2026-10-000001")  # with its credit note
    j("invoices", "export", "--period", "2026-10")  # credit note lines
    j("report", "revenue", "--period", "2026-10")  # net of credit notes
    j("run-monthly", "--period", "2026-10", "--yes")

    # the Redis stream: two good entries, a retry, an unknown tenant (a dead letter)
    cli.env.update({"BILLCTL_REDIS_URL": redis_url, "BILLCTL_STREAM_NAME": stream})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    now = int(time.time() * 1000)
    client.xadd(stream, {"tenant_id": "acme", "endpoint": "/v1/search", "units": 2, "event_id": "s1", "ts": now})
    client.xadd(stream, {"tenant_id": "acme", "endpoint": "/v1/search", "units": 2, "event_id": "s1", "ts": now})
    client.xadd(stream, {"tenant_id": "wayne", "units": 1})
    client.close()
    j("usage", "aggregate", "--dry-run")
    j("usage", "aggregate", "--drain")
    j("usage", "lag")
    j("usage", "dead-letters", "list")
    j("usage", "dead-letters", "replay", "--dry-run")
    cli("tenants", "create", "wayne")
    j("usage", "dead-letters", "replay", "--yes")
    j("usage", "prune", "--dry-run")
    j("usage", "prune")
    j("audit", "list", "-n", "200")
    return docs


def test_every_json_document_matches_its_schema(cli, tmp_path, fake, redis_url, stream):
    docs = run_scenario(cli, tmp_path, fake, redis_url, stream)
    expected = {reference().schema_name(p) for p in reference().json_commands()}
    assert set(docs) == expected, f"-o json commands the scenario does not run: {sorted(expected - set(docs))}"
    found = [p for name, documents in sorted(docs.items()) for d in documents for p in problems(name, d)]
    assert not found, "\n".join(found[:40])


def test_partial_closes_match_their_schemas(cli, tmp_path, monkeypatch):
    """The documents of a close that leaves tenants out: one whose month is not over yet in its time
    zone (Los Angeles, at 02:00 UTC on November 1st) and one whose plan cannot be billed (a base fee
    beyond the bounds): preview, finalize (dry run and real) and run-monthly list them, exit 6."""
    from datetime import UTC, datetime

    from tests.helpers import plan_beyond_the_bounds, three_tenants

    three_tenants(cli, tmp_path, {"initech": "America/Los_Angeles"})
    plan_beyond_the_bounds(cli.db_url, "globex")
    monkeypatch.setattr("billctl.services.context.App.now", lambda self: datetime(2026, 11, 1, 2, tzinfo=UTC))
    cli.env["BILLCTL_MONTHLY_DRAIN_STREAM"] = "false"
    runs = {
        "invoices-preview": cli("invoices", "preview", "--period", "2026-10", "-o", "json", expect=6).json(),
        "invoices-finalize": cli(
            "invoices", "finalize", "--period", "2026-10", "--dry-run", "-o", "json", expect=6
        ).json(),
    }
    final = cli("invoices", "finalize", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    report = cli("run-monthly", "--period", "2026-10", "--yes", "-o", "json", expect=6).json()
    statuses = {d["tenant"]: d["status"] for d in final["invoices"]}
    assert statuses == {"acme": "finalized", "globex": "failed", "initech": "not over"}
    assert final["outcomes"] == {"finalized": 1, "failed": 1, "not over": 1}
    assert {d["tenant"]: d["status"] for d in runs["invoices-preview"]["invoices"]}["globex"] == "failed"
    assert [f["tenant"] for f in report["failed"]] == ["globex"]
    assert [n["tenant"] for n in report["not_over"]] == ["initech"]
    found = problems("invoices-preview", runs["invoices-preview"])
    found += problems("invoices-finalize", runs["invoices-finalize"]) + problems("invoices-finalize", final)
    found += problems("run-monthly", report)
    assert not found, "\n".join(found[:40])
