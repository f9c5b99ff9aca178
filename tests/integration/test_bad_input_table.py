"""Bad input, kind by kind: each named case gets its documented exit code, one error that names the
field (or file, or setting) and the fix, no traceback, and leaves the database exactly as it was.

Every case runs on its own copy of a seeded SQLite database (October closed: acme, globex, initech,
plans basic and tiered). SQLite stores any text and any integer it is given, so a missing check
shows here as a write, not only on PostgreSQL as a crash.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.helpers import BASIC, seed_october, sqlite_snapshot

NOW = datetime.now(UTC)
CURRENT = f"{NOW.year:04d}-{NOW.month:02d}"
LAST_MONTH_TS = "2026-10-15T12:00:00Z"


@dataclass
class Case:
    name: str
    args: list[str]  # "{file}" is replaced by the path of ``file``, "{dir}" by the case's directory
    exit: int
    needles: tuple[str, ...]  # what the error must say: the field and the fix
    file: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None


def plan(**changes: object) -> bytes:
    """The basic plan with fields changed (None removes one); values are TOML source."""
    fields: dict[str, object] = {
        "name": '"custom"',
        "currency": '"USD"',
        "base_fee": '"29.00"',
        "included_units": "10000",
    }
    price: dict[str, object] = {"model": '"per_unit"', "unit_price": '"0.001"'}
    extra = ""
    for key, value in changes.items():
        if key.startswith("price_"):
            price[key[6:]] = value
        elif key == "extra":
            extra = str(value)
        else:
            fields[key] = value
    lines = [f"{k} = {v}" for k, v in fields.items() if v is not None]
    if any(v is not None for v in price.values()):
        lines += ["[price]"] + [f"{k} = {v}" for k, v in price.items() if v is not None]
    return ("\n".join(lines) + "\n" + extra).encode()


def tiers(n: int) -> str:
    items = [f'{{ up_to = {i + 1}, unit_price = "0.01" }}' for i in range(n - 1)] + ['{ unit_price = "0.01" }']
    return "[" + ", ".join(items) + "]"


def event(**fields: object) -> bytes:
    base: dict[str, object] = {"tenant_id": "acme", "ts": LAST_MONTH_TS, "event_id": "bad-1"}
    base.update(fields)
    return (json.dumps({k: v for k, v in base.items() if v is not None}) + "\n").encode()


def envoy(**fields: object) -> bytes:
    base: dict[str, object] = {
        "start_time": LAST_MONTH_TS,
        "path": "/v1/search",
        "response_code": 200,
        "request_id": "r-1",
        "x-tenant-id": "acme",
    }
    base.update(fields)
    return (json.dumps({k: v for k, v in base.items() if v is not None}) + "\n").encode()


def toml(section: str, key: str, value: str) -> bytes:
    return f"[{section}]\n{key} = {value}\n".encode()


IMPORT = ["usage", "import", "{file}", "--strict"]
CREATE_PLAN = ["plans", "create", "--file", "{file}"]
DISCOUNT = ["discounts", "add", "acme", "--kind"]
LONG = "x" * 10_000

CASES = [
    # -- periods ----------------------------------------------------------------------------------
    Case("period month 13", ["invoices", "preview", "-p", "2026-13"], 3, ("--period", "YYYY-MM")),
    Case("period one-digit month", ["invoices", "preview", "-p", "2026-1"], 3, ("--period", "YYYY-MM")),
    Case("period a word", ["invoices", "preview", "-p", "October"], 3, ("--period", "YYYY-MM")),
    Case("period before 1970", ["invoices", "preview", "-p", "1969-12"], 3, ("--period", "YYYY-MM")),
    Case("period empty", ["invoices", "preview", "-p", ""], 3, ("--period", "YYYY-MM")),
    Case("period markup", ["invoices", "preview", "-p", "[/x]"], 3, ("--period", "'[/x]'", "YYYY-MM")),
    Case("period five-digit year", ["invoices", "preview", "-p", "99999-01"], 3, ("--period", "YYYY-MM")),
    Case("period is a date", ["usage", "show", "-t", "acme", "-p", "2026-10-01"], 3, ("--period", "YYYY-MM")),
    Case("period of revenue", ["report", "revenue", "-p", "2026-00"], 3, ("--period", "YYYY-MM")),
    Case("period 10,000 characters", ["invoices", "list", "-p", LONG], 3, ("--period", "(10000 characters)")),
    Case(
        "finalize a future month",
        ["invoices", "finalize", "-p", "2099-01", "--yes"],
        3,
        ("2099-01 is not over yet", "--allow-open-period"),
    ),
    Case(
        "finalize the current month",
        ["invoices", "finalize", "-p", CURRENT, "--yes"],
        3,
        (f"{CURRENT} is not over yet", "--allow-open-period"),
    ),
    Case(
        "finalize the current month, one tenant",
        ["invoices", "finalize", "-p", CURRENT, "-t", "globex", "--yes", "--dry-run"],
        3,
        ("not over yet for tenant 'globex'", "Asia/Kolkata", "--allow-open-period"),
    ),
    Case(
        "run-monthly of a future month",
        ["run-monthly", "-p", "2099-01", "--yes"],
        3,
        ("2099-01 is not over yet", "--allow-open-period"),
    ),
    Case(
        "run-monthly dry run of the current month",
        ["run-monthly", "-p", CURRENT, "--dry-run"],
        3,
        ("not over yet", "--allow-open-period"),
    ),
    Case("finalize without --yes", ["invoices", "finalize", "-p", "2026-09"], 3, ("confirmation", "--yes")),
    # -- tenants ----------------------------------------------------------------------------------
    Case("tenant id markup", ["tenants", "create", "[/x]"], 3, ("tenant id '[/x]'", "letters, digits")),
    Case("tenant id too long", ["tenants", "create", "t" * 65], 3, ("tenant id", "1-64")),
    Case("tenant id 10,000 characters", ["tenants", "create", LONG], 3, ("(10000 characters)", "1-64")),
    Case("tenant id with a space", ["tenants", "create", "a b"], 3, ("tenant id 'a b'", "1-64")),
    Case("tenant id empty", ["tenants", "create", ""], 3, ("tenant id ''", "1-64")),
    Case("tenant id not UTF-8", ["tenants", "create", "a\udcff"], 2, ("not UTF-8",)),
    Case("tenant name empty", ["tenants", "create", "zed", "--name", " "], 3, ("--name", "must not be empty")),
    Case("tenant name 201 characters", ["tenants", "create", "zed", "--name", "n" * 201], 3, ("--name", "at most 200")),
    Case("tenant name escape codes", ["tenants", "create", "zed", "--name", "\x1b[31mred"], 3, ("--name", "control")),
    Case("tenant name bidi override", ["tenants", "create", "zed", "--name", "a\u202eb"], 3, ("--name", "control")),
    Case(
        "tenant update unknown",
        ["tenants", "update", "nobody", "--name", "[/x]"],
        3,
        ("unknown tenant 'nobody'", "tenants list"),
    ),
    Case("tenant email invalid", ["tenants", "create", "zed", "--email", "nope"], 3, ("--email", "e.g.")),
    Case(
        "tenant email 321 characters",
        ["tenants", "create", "zed", "--email", "a" * 310 + "@example.com"],
        3,
        ("--email", "at most 320"),
    ),
    Case("tenant time zone unknown", ["tenants", "create", "zed", "--tz", "Mars/Base"], 3, ("--timezone", "IANA")),
    Case(
        "tenant time zone straddling buckets",
        ["--set", "usage.bucket_seconds=3600", "tenants", "create", "zed", "--tz", "Asia/Kolkata"],
        3,
        ("Asia/Kolkata", "usage.bucket_seconds = 300"),
    ),
    Case("tenant currency unknown", ["tenants", "create", "zed", "--currency", "XYZ"], 3, ("--currency", "ISO 4217")),
    Case("tax rate negative", ["tenants", "create", "zed", "--tax-rate", "-5"], 3, ("--tax-rate", "0 and 100")),
    Case("tax rate above 100", ["tenants", "create", "zed", "--tax-rate", "101"], 3, ("--tax-rate", "0 and 100")),
    Case("tax rate NaN", ["tenants", "create", "zed", "--tax-rate", "NaN"], 3, ("--tax-rate", "0 and 100")),
    Case("tax rate 5 decimals", ["tenants", "create", "zed", "--tax-rate", "8.25001"], 3, ("--tax-rate", "decimal")),
    Case("tax rate a word", ["tenants", "create", "zed", "--tax-rate", "eight"], 3, ("--tax-rate", "percent such as")),
    Case("tenant status unknown", ["tenants", "create", "zed", "--status", "gone"], 3, ("--status", "one of")),
    Case(
        "tenant external id 201 characters",
        ["tenants", "create", "zed", "--external-id", "e" * 201],
        3,
        ("--external-id", "at most 200"),
    ),
    Case("tenant unknown", ["tenants", "show", "nobody"], 3, ("unknown tenant 'nobody'", "tenants list")),
    Case("tenant unknown markup", ["tenants", "show", "[/x]"], 3, ("unknown tenant '[/x]'", "tenants list")),
    Case("tenant update nothing", ["tenants", "update", "acme"], 3, ("nothing to update", "--help")),
    Case("tenant exists", ["tenants", "create", "acme"], 9, ("already exists", "tenants update acme")),
    Case(
        "currency change after invoices",
        ["tenants", "update", "acme", "--currency", "EUR"],
        9,
        ("already has invoices", "create a new tenant"),
    ),
    Case("assign unknown plan", ["tenants", "assign-plan", "acme", "gold"], 3, ("unknown plan 'gold'", "plans list")),
    Case(
        "assign on an impossible date",
        ["tenants", "assign-plan", "acme", "tiered", "--effective", "2026-02-30"],
        3,
        ("--effective", "not a valid date"),
    ),
    Case(
        "assign inside a finalized period",
        ["tenants", "assign-plan", "acme", "tiered", "--effective", "2026-10-15"],
        9,
        ("already finalized", "effective date after that period"),
    ),
    Case("actor 201 characters", ["--actor", "a" * 201, "tenants", "create", "zed"], 3, ("--actor", "at most 200")),
    Case("actor control characters", ["--actor", "a\x07b", "tenants", "create", "zed"], 3, ("--actor", "control")),
    # -- discounts --------------------------------------------------------------------------------
    Case("discount kind unknown", [*DISCOUNT, "bogo", "--value", "10"], 3, ("--kind", "percent or fixed")),
    Case("discount zero", [*DISCOUNT, "percent", "--value", "0"], 3, ("--value", "greater than 0")),
    Case("discount negative", [*DISCOUNT, "fixed", "--value", "-5"], 3, ("--value", "greater than 0")),
    Case("discount above 100 %", [*DISCOUNT, "percent", "--value", "150"], 3, ("--value", "up to 100")),
    Case("discount percent decimals", [*DISCOUNT, "percent", "--value", "1.23456"], 3, ("--value", "decimal places")),
    Case("discount not a number", [*DISCOUNT, "fixed", "--value", "ten"], 3, ("--value", "decimal")),
    Case("discount 40 digits", [*DISCOUNT, "fixed", "--value", "9" * 40], 3, ("--value", "limit")),
    Case("discount finer than cents", [*DISCOUNT, "fixed", "--value", "0.001"], 3, ("--value", "finer than USD")),
    Case("discount NaN", [*DISCOUNT, "fixed", "--value", "NaN"], 3, ("--value", "finite")),
    Case(
        "discount from an impossible date",
        [*DISCOUNT, "percent", "--value", "5", "--from", "2026-13-01"],
        3,
        ("--from", "YYYY-MM-DD"),
    ),
    Case(
        "discount until before from",
        [*DISCOUNT, "percent", "--value", "5", "--from", "2026-10-10", "--until", "2026-10-01"],
        3,
        ("--until", "before --from"),
    ),
    Case(
        "discount description 201 characters",
        [*DISCOUNT, "percent", "--value", "5", "--description", "d" * 201],
        3,
        ("--description", "at most 200"),
    ),
    Case(
        "discount description escape codes",
        [*DISCOUNT, "percent", "--value", "5", "--description", "\x1b]0;x\x07"],
        3,
        ("--description", "control"),
    ),
    Case(
        "discount for an unknown tenant",
        ["discounts", "add", "nobody", "--kind", "percent", "--value", "5"],
        3,
        ("unknown tenant 'nobody'", "tenants list"),
    ),
    Case(
        "discount remove unknown", ["discounts", "remove", "acme", "999", "--yes"], 3, ("no discount 999", "show acme")
    ),
    Case(
        "discount remove huge id", ["discounts", "remove", "acme", "9" * 30, "--yes"], 2, ("discount_id", "2147483647")
    ),
    # -- plans ------------------------------------------------------------------------------------
    Case("plan base fee 40 digits", CREATE_PLAN, 3, ("base_fee", "limit"), plan(base_fee='"' + "1" * 40 + '"')),
    Case("plan base fee 10^20", CREATE_PLAN, 3, ("base_fee", "limit"), plan(base_fee='"1e20"')),
    Case("plan base fee negative", CREATE_PLAN, 3, ("base_fee", "must not be negative"), plan(base_fee='"-1"')),
    Case("plan base fee float", CREATE_PLAN, 3, ("base_fee", 'base_fee = "29.5"'), plan(base_fee="29.5")),
    Case("plan base fee sub-cent", CREATE_PLAN, 3, ("base_fee", "finer than USD"), plan(base_fee='"29.001"')),
    Case("plan base fee NaN", CREATE_PLAN, 3, ("base_fee", "finite"), plan(base_fee='"NaN"')),
    Case("plan base fee boolean", CREATE_PLAN, 3, ("base_fee", "decimal string"), plan(base_fee="true")),
    Case("plan unit price too high", CREATE_PLAN, 3, ("price.unit_price", "limit"), plan(price_unit_price='"20000"')),
    Case(
        "plan unit price 13 decimals",
        CREATE_PLAN,
        3,
        ("price.unit_price", "12 decimal places"),
        plan(price_unit_price='"0.0000000000001"'),
    ),
    Case("plan minimum too high", CREATE_PLAN, 3, ("minimum", "limit"), plan(minimum='"1e15"')),
    Case("plan included units 10^16", CREATE_PLAN, 3, ("included_units", "at most"), plan(included_units=10**16)),
    Case("plan included units negative", CREATE_PLAN, 3, ("included_units", "at least 0"), plan(included_units=-1)),
    Case("plan included units a word", CREATE_PLAN, 3, ("included_units", "whole number"), plan(included_units='"x"')),
    Case(
        "plan tier up_to too large",
        CREATE_PLAN,
        3,
        ("price.tiers[0].up_to", "at most"),
        plan(
            price_model='"graduated"',
            price_unit_price=None,
            price_tiers=f'[{{ up_to = {10**16}, unit_price = "0.1" }}, {{ unit_price = "0.1" }}]',
        ),
    ),
    Case(
        "plan tier flat fee too high",
        CREATE_PLAN,
        3,
        ("price.tiers[0].flat_fee", "limit"),
        plan(price_model='"volume"', price_unit_price=None, price_tiers='[{ unit_price = "0.1", flat_fee = "1e14" }]'),
    ),
    Case(
        "plan tiers overlap",
        CREATE_PLAN,
        3,
        ("price.tiers[1].up_to", "must not overlap"),
        plan(
            price_model='"graduated"',
            price_unit_price=None,
            price_tiers='[{ up_to = 10, unit_price = "0.1" }, { up_to = 5, unit_price = "0.1" }, '
            '{ unit_price = "0.1" }]',
        ),
    ),
    Case(
        "plan last tier bounded",
        CREATE_PLAN,
        3,
        ("price.tiers[0].up_to", "remove up_to"),
        plan(price_model='"graduated"', price_unit_price=None, price_tiers='[{ up_to = 10, unit_price = "0.1" }]'),
    ),
    Case(
        "plan 101 tiers",
        CREATE_PLAN,
        3,
        ("price.tiers", "at most 100"),
        plan(price_model='"graduated"', price_unit_price=None, price_tiers=tiers(101)),
    ),
    Case(
        "plan package price per unit too high",
        CREATE_PLAN,
        3,
        ("price.package_price", "larger packages"),
        plan(price_model='"package"', price_unit_price=None, price_package_size=1, price_package_price='"50000"'),
    ),
    Case(
        "plan package size zero",
        CREATE_PLAN,
        3,
        ("price.package_size", "at least 1"),
        plan(price_model='"package"', price_unit_price=None, price_package_size=0, price_package_price='"1"'),
    ),
    Case(
        "plan weight zero",
        CREATE_PLAN,
        3,
        ("weights./v1/ocr", "greater than 0"),
        plan(extra='[weights]\n"/v1/ocr" = 0\n'),
    ),
    Case(
        "plan weight too large",
        CREATE_PLAN,
        3,
        ("weights./v1/ocr", "at most 1,000,000"),
        plan(extra='[weights]\n"/v1/ocr" = "1e7"\n'),
    ),
    Case(
        "plan weight endpoint 201 characters",
        CREATE_PLAN,
        3,
        ("weights", "at most 200"),
        plan(extra=f'[weights]\n"/{"e" * 200}" = 2\n'),
    ),
    Case(
        "plan description 501 characters",
        CREATE_PLAN,
        3,
        ("description", "at most 500"),
        plan(description='"' + "d" * 501 + '"'),
    ),
    Case("plan description escape codes", CREATE_PLAN, 3, ("description", "control"), plan(description='"\\u001b[2J"')),
    Case("plan key typo", CREATE_PLAN, 3, ("base_fe", "did you mean 'base_fee'"), plan(base_fe='"1"')),
    Case(
        "plan with 1,000 unknown keys",
        CREATE_PLAN,
        3,
        ("1,000 problem(s)", "… and 980 more"),
        plan(extra="".join(f"k{i} = 1\n" for i in range(1000))),
    ),
    Case("plan name with a space", CREATE_PLAN, 3, ("name", "lower-case letters"), plan(name='"Pro Plan"')),
    Case("plan currency unknown", CREATE_PLAN, 3, ("currency", "ISO 4217"), plan(currency='"XYZ"')),
    Case("plan model unknown", CREATE_PLAN, 3, ("price.model", "per_unit, graduated"), plan(price_model='"tiered"')),
    Case(
        "plan without price",
        CREATE_PLAN,
        3,
        ("price: is required", 'model = "per_unit"'),
        plan(price_model=None, price_unit_price=None),
    ),
    Case("plan file not UTF-8", CREATE_PLAN, 3, ("plan file", "not UTF-8", "save it as UTF-8"), b'name = "\xff"\n'),
    Case("plan file UTF-16", CREATE_PLAN, 3, ("plan file", "not UTF-8"), BASIC.encode("utf-16")),
    Case("plan file binary", CREATE_PLAN, 3, ("plan file", "not UTF-8"), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    Case("plan file over 1 MiB", CREATE_PLAN, 3, ("plan file", "1,048,576", "right file"), b"#" * (1024 * 1024 + 1)),
    Case("plan file invalid TOML", CREATE_PLAN, 3, ("plan file", "invalid TOML"), b"name = [unclosed\n"),
    Case(
        "plan file nested deeply",
        CREATE_PLAN,
        3,
        ("plan file", "nested too deeply"),
        b"a = " + b"[" * 5000 + b"]" * 5000,
    ),
    Case(
        "plan file missing", ["plans", "create", "--file", "{dir}/nope.toml"], 3, ("cannot read plan file", "nope.toml")
    ),
    Case("plan file a directory", ["plans", "create", "--file", "{dir}"], 3, ("cannot read plan file",)),
    Case(
        "plan from stdin not UTF-8", ["plans", "create", "--file", "-"], 3, ("plan file -", "not UTF-8"), stdin=b"\xff"
    ),
    Case("plan update unknown", ["plans", "update", "--file", "{file}"], 3, ("unknown plan", "plans create"), plan()),
    # -- events: one bad line, reported by line with the field; nothing counted ----------------------
    Case("event dated 2099", IMPORT, 6, (":1: ts", "usage.max_future_seconds"), event(ts="2099-01-01T00:00:00Z")),
    Case("event dated year 1", IMPORT, 6, (":1: ts", "usage.max_past_days"), event(ts="0001-01-01T00:00:00Z")),
    Case("event dated 1969", IMPORT, 6, (":1: ts", "usage.max_past_days"), event(ts="1969-12-31T23:59:59Z")),
    Case(
        "event two years old",
        IMPORT,
        6,
        (":1: ts", "usage.max_past_days = 400"),
        event(ts="2024-10-01T00:00:00Z"),
        env={"BILLCTL_USAGE_MAX_PAST_DAYS": "400"},
    ),
    Case("event ts negative", IMPORT, 6, (":1: ts", "negative"), event(ts=-5)),
    Case("event ts in seconds", IMPORT, 6, (":1: ts", "seconds instead of milliseconds"), event(ts=1_790_000_000)),
    Case(
        "event ts beyond datetime", IMPORT, 6, (":1: ts", "usage.max_past_days"), event(ts="0001-01-01T00:00:00+01:00")
    ),
    Case("event ts garbage", IMPORT, 6, (":1: ts", "ISO-8601"), event(ts="yesterday")),
    Case("event ts 10^20 ms", IMPORT, 6, (":1: ts", "usage.max_future_seconds"), event(ts=10**20)),
    Case("event units zero", IMPORT, 6, (":1: units", ">= 1"), event(units=0)),
    Case("event units fractional", IMPORT, 6, (":1: units", "integer"), event(units="1.5")),
    Case("event units 10^10", IMPORT, 6, (":1: units", "limit"), event(units=10**10)),
    Case("event tenant missing", IMPORT, 6, (":1: tenant_id is missing",), event(tenant_id=None)),
    Case("event tenant unknown", IMPORT, 6, (":1: unknown tenant 'nobody'",), event(tenant_id="nobody")),
    Case("event tenant markup", IMPORT, 6, (":1: unknown tenant '[/x]'",), event(tenant_id="[/x]")),
    Case("event tenant 201 characters", IMPORT, 6, (":1: tenant_id", "200"), event(tenant_id="t" * 201)),
    Case("event tenant an object", IMPORT, 6, (":1: tenant_id", "string"), event(tenant_id={"a": 1})),
    Case(
        "event id not UTF-8",
        IMPORT,
        6,
        (":1: event_id", "UTF-8"),
        b'{"tenant_id": "acme", "ts": 1790000000000, "event_id": "\\udcff"}\n',
    ),
    Case("event field typo", IMPORT, 6, (":1: unknown field(s) endpont", "the fields are"), event(endpont="/x")),
    Case("event not JSON", IMPORT, 6, (":1: not valid JSON",), b"tenant_id=acme\n"),
    Case("event a JSON array", IMPORT, 6, (":1: not a JSON object",), b'["acme"]\n'),
    Case("event line not UTF-8", IMPORT, 6, (":1: not UTF-8", "0xff"), b'{"tenant_id": "acme\xff"}\n'),
    Case("event line of 100 KB", IMPORT, 6, (":1: line is", "65,536"), b'{"x": "' + b"y" * 100_000 + b'"}\n'),
    Case("event nested deeply", IMPORT, 6, (":1: not valid JSON",), b"[" * 20_000 + b"\n"),
    Case("event 5,000-digit number", IMPORT, 6, (":1: not valid JSON", "digits"), b'{"units": ' + b"9" * 5000 + b"}\n"),
    Case(
        "access log dated 2099",
        [*IMPORT, "--format", "envoy"],
        6,
        (":1: start_time", "usage.max_future_seconds"),
        envoy(start_time="2099-01-01T00:00:00Z"),
    ),
    Case(
        "access log without tenant header",
        [*IMPORT, "--format", "envoy"],
        6,
        (":1: x-tenant-id is missing", "gateway.tenant_field"),
        envoy(**{"x-tenant-id": None}),
    ),
    Case(
        "access log status garbage",
        [*IMPORT, "--format", "envoy"],
        6,
        (":1: response_code", "status code"),
        envoy(response_code="[/x]"),
    ),
    Case("import file missing", ["usage", "import", "{dir}/nope.ndjson"], 3, ("cannot read", "NDJSON file")),
    Case("import a directory", ["usage", "import", "{dir}"], 3, ("cannot read", "NDJSON file")),
    Case("import format unknown", ["usage", "import", "{file}", "--format", "xml"], 3, ("--format", "envoy"), b""),
    # -- configuration ----------------------------------------------------------------------------
    Case("config file not UTF-8", ["-c", "{file}", "tenants", "list"], 4, ("config file", "not UTF-8"), b"# \xff\n"),
    Case("config file binary", ["-c", "{file}", "tenants", "list"], 4, ("config file", "not UTF-8"), b"\x00\xff\xfe"),
    Case("config file over 1 MiB", ["-c", "{file}", "tenants", "list"], 4, ("config file", "right file"), b"#" * 2**21),
    Case("config file invalid TOML", ["-c", "{file}", "tenants", "list"], 4, ("config file", "invalid TOML"), b"[x"),
    Case(
        "config key typo",
        ["-c", "{file}", "tenants", "list"],
        4,
        ("unknown setting 'billing.timezon'", "did you mean 'billing.timezone'"),
        toml("billing", "timezon", '"UTC"'),
    ),
    Case(
        "config secret in the file",
        ["-c", "{file}", "tenants", "list"],
        4,
        ("stripe.api_key", "is a secret", "BILLCTL_STRIPE_API_KEY"),
        toml("stripe", "api_key", '"sk_test_x"'),
    ),
    Case(
        "config password in the file, overridden by env",
        ["-c", "{file}", "tenants", "list"],
        4,
        ("database.url contains a password", "BILLCTL_DATABASE_PASSWORD"),
        toml("database", "url", '"postgresql+psycopg://u:s3cret@db/billctl"'),
        env={"BILLCTL_DATABASE_URL": "{db}"},
    ),
    Case(
        "config Redis password in the file",
        ["-c", "{file}", "tenants", "list"],
        4,
        ("redis.url contains a password", "BILLCTL_REDIS_PASSWORD"),
        toml("redis", "url", '"redis://:s3cret@cache:6379/0"'),
    ),
    Case("config file missing", ["-c", "{dir}/nope.toml", "tenants", "list"], 4, ("does not exist", "config init")),
    Case(
        "setting 10,000-character key",
        ["--set", f"{LONG}=1", "tenants", "list"],
        4,
        ("(10000 characters)", "unknown setting"),
    ),
    Case("setting without =", ["--set", "usage.bucket_seconds", "tenants", "list"], 2, ("--set", "KEY=VALUE")),
    Case(
        "setting bucket 7 s",
        ["--set", "usage.bucket_seconds=7", "tenants", "list"],
        4,
        ("usage.bucket_seconds", "one of"),
    ),
    Case(
        "setting lock stale 10^20 s",
        ["--set", "monthly.lock_stale_seconds=" + "1" + "0" * 20, "tenants", "list"],
        4,
        ("monthly.lock_stale_seconds", "between 1 and"),
    ),
    Case(
        "setting past window 0",
        ["--set", "usage.max_past_days=0", "tenants", "list"],
        4,
        ("usage.max_past_days", "between 1"),
    ),
    Case(
        "setting past window 100,000 days",
        ["--set", "usage.max_past_days=100000", "tenants", "list"],
        4,
        ("usage.max_past_days", "3,650"),
    ),
    Case(
        "setting number pattern without seq",
        ["--set", "billing.invoice_number_pattern=INV-{period}", "tenants", "list"],
        4,
        ("billing.invoice_number_pattern", "{seq"),
    ),
    Case(
        "setting number pattern too long",
        ["--set", "billing.invoice_number_pattern=" + "I" * 60 + "{seq:06d}", "tenants", "list"],
        4,
        ("billing.invoice_number_pattern", "at most 64"),
    ),
    Case(
        "setting number pattern format",
        ["--set", "billing.invoice_number_pattern={month:02d}-{seq}", "tenants", "list"],
        4,
        ("billing.invoice_number_pattern", "placeholders are"),
    ),
    Case(
        "setting hold limit huge",
        ["--set", "monthly.hold_above=USD=1e30", "tenants", "list"],
        4,
        ("monthly.hold_above", "at most"),
    ),
    Case(
        "setting hold limit no currency",
        ["--set", "monthly.hold_above=10000", "tenants", "list"],
        4,
        ("monthly.hold_above", "CURRENCY=AMOUNT"),
    ),
    Case(
        "setting hold multiple huge",
        ["--set", "monthly.hold_multiple=1e999", "tenants", "list"],
        4,
        ("monthly.hold_multiple", "0 to 1000"),
    ),
    Case(
        "setting time zone unknown",
        ["--set", "billing.timezone=Mars/Base", "tenants", "list"],
        4,
        ("billing.timezone", "IANA"),
    ),
    Case(
        "setting stream name 151 characters",
        ["--set", "stream.name=" + "s" * 151, "tenants", "list"],
        4,
        ("stream.name", "at most 150"),
    ),
    Case(
        "setting output xml",
        ["--set", "output.format=xml", "tenants", "list"],
        4,
        ("output.format", "table, json or csv"),
    ),
    Case(
        "setting from env with a control character",
        ["tenants", "list"],
        4,
        ("stream.name", "control"),
        env={"BILLCTL_STREAM_NAME": "a\x01b"},
    ),
    # -- database URLs ----------------------------------------------------------------------------
    Case(
        "database mysql",
        ["--database-url", "mysql://u@h/db", "tenants", "list"],
        4,
        ("unsupported database 'mysql'", "sqlite:///"),
    ),
    Case(
        "database oracle",
        ["--database-url", "oracle://u@h/db", "tenants", "list"],
        4,
        ("unsupported database", "postgresql+psycopg://"),
    ),
    Case(
        "database psycopg2 driver",
        ["--database-url", "postgresql+psycopg2://u@h/db", "tenants", "list"],
        4,
        ("unsupported database 'postgresql+psycopg2'", "postgresql+psycopg://"),
    ),
    Case("database not a URL", ["--database-url", "not a url", "tenants", "list"], 4, ("database.url", "sqlite:///")),
    Case(
        "database not a SQLite file",
        ["--database-url", "sqlite:///{file}", "tenants", "list"],
        4,
        ("is not a SQLite database", "fix database.url"),
        b"hello",
    ),
    Case(
        "database directory missing",
        ["--database-url", "sqlite:///{dir}/no/such/x.db", "db", "upgrade"],
        4,
        ("does not exist", "create it"),
    ),
    Case(
        "database file missing",
        ["--database-url", "sqlite:///{dir}/typo.db", "tenants", "list"],
        8,
        ("no database at this path", "billctl db upgrade"),
    ),
    Case(
        "database status of a missing file",
        ["--database-url", "sqlite:///{dir}/typo.db", "db", "status"],
        8,
        ("no database at this path", "check the path"),
    ),
    Case(
        "database path is a directory",
        ["--database-url", "sqlite:///{dir}", "tenants", "list"],
        4,
        ("is a directory", "name a file"),
    ),
    Case(
        "database read-only",
        ["--database-url", "sqlite:///file:{db}?mode=ro&uri=true", "tenants", "create", "zed"],
        5,
        ("read-only", "writable"),
    ),
    # -- invoices ---------------------------------------------------------------------------------
    Case("invoice unknown markup", ["invoices", "show", "[/x]"], 3, ("unknown invoice '[/x]'", "invoices list")),
    Case("invoice id 30 digits", ["invoices", "show", "9" * 30], 3, ("unknown invoice", "invoices list")),
    Case("invoice id unicode digits", ["invoices", "explain", "²³"], 3, ("unknown invoice", "invoices list")),
    Case(
        "void without reason",
        ["invoices", "void", "INV-2026-10-000001", "--reason", " ", "--yes"],
        3,
        ("--reason", "required"),
    ),
    Case(
        "void reason 501 characters",
        ["invoices", "void", "INV-2026-10-000001", "--reason", "r" * 501, "--yes"],
        3,
        ("--reason", "at most 500"),
    ),
    Case(
        "release not held",
        ["invoices", "release", "INV-2026-10-000001", "--yes"],
        9,
        ("not held", "only held invoices"),
    ),
    Case(
        "recompute unknown tenant",
        ["invoices", "recompute", "-p", "2026-10", "-t", "nobody"],
        3,
        ("unknown tenant 'nobody'", "tenants list"),
    ),
    Case(
        "config init in a missing directory",
        ["config", "init", "{dir}/no/such/billctl.toml"],
        3,
        ("cannot write", "existing directory"),
    ),
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_october(tmp_path_factory.mktemp("table-seed"))


def test_at_least_100_kinds() -> None:
    assert len(CASES) >= 100 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BILLCTL_") and not name.startswith("BILLCTL_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "billctl.db"
    shutil.copy(seeded, db)
    file = tmp_path / "input"
    if case.file is not None:
        file.write_bytes(case.file)

    def fill(text: str) -> str:
        return text.replace("{file}", str(file)).replace("{dir}", str(tmp_path)).replace("{db}", str(db))

    args = [fill(a) for a in case.args]
    env = {"BILLCTL_REDIS_URL": "redis://127.0.0.1:1/0", **{k: fill(v) for k, v in case.env.items()}}
    if "{db}" in case.env.get("BILLCTL_DATABASE_URL", ""):
        env["BILLCTL_DATABASE_URL"] = f"sqlite:///{db}"
    before = sqlite_snapshot(db)
    cli = Cli(db_url=f"sqlite:///{db}", env=env)
    result = cli(*args, expect=case.exit, input=case.stdin)
    assert "Traceback" not in result.stderr + result.stdout
    for needle in case.needles:
        assert needle in result.stderr, f"{needle!r} not in:\n{result.stderr}"
    assert sqlite_snapshot(db) == before, "the database changed"
    assert not (tmp_path / "typo.db").exists()  # a mistyped SQLite path leaves no file behind
