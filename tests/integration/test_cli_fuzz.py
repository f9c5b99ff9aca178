"""Every command, driven with generated arguments and files (hypothesis): whatever the input, the
exit code is a documented one and never 1 (an internal error), no traceback is printed, and a
command that fails leaves the database exactly as it was.

The commands and their parameters are read from the Typer app itself, so a new command or option
is fuzzed without touching this file. Each example runs on a fresh copy of a seeded SQLite database
(a close of October: tenants, plans, usage, a discount, finalized invoices), with Redis unreachable
and no Stripe key, so no example depends on another or reaches a server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from billctl.cli.app import app
from tests.helpers import seed_october, sqlite_snapshot

EXAMPLES = int(os.environ.get("BILLCTL_FUZZ_EXAMPLES", "6"))  # per command: ~35 s in all on an idle machine
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10}  # errors.ExitCode without 1 (internal) and 143 (SIGTERM)
UNCHANGED_ON = {2, 3, 4, 5, 7, 8, 9}  # failures; 6 (partial) and 10 (found) may have done their part
# A run records each step it attempted, a failed one too (run_step): that is its trail, not its work.
BOOKKEEPING = {"run-monthly": frozenset({"run_step"})}


# -- the commands ---------------------------------------------------------------------------------
def _walk(command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(get_command(app)))


# -- values ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    """A file the example writes before it runs; its path goes on the command line."""

    content: bytes


NASTY = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "[/x]",
            "[bold]acme",
            "[red]x[/red]",
            "[/]",
            "\\",
            "\x1b[31mred",
            "a\nb",
            "tab\there",
            "\u202eevil",
            "é",
            "🎉",
            "-1",
            "0",
            "-0",
            "1e999999",
            "NaN",
            "-inf",
            "9" * 40,
            "1" * 5000,
            "x" * 10_000,
            "0001-01-01",
            "9999-12-31",
            "2026-13",
            "2026-02-30",
            "0000-00",
            "{seq}",
            "%s%n",
            "../../etc/passwd",
            "/",
            ".",
            "--yes",
            "-",
        ]
    ),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)

GOOD = {
    "tenant_id": ["acme", "globex", "initech", "nobody"],
    "tenant": ["acme", "globex", "nobody"],
    "plan": ["basic", "tiered", "gold"],
    "name": ["basic", "tiered", "Acme Inc."],
    "period": ["2026-10", "2026-09", "2026-11", "2099-01", "1970-01"],
    "invoice": ["INV-2026-10-000001", "INV-2026-10-000002", "1", "INV-NOPE"],
    "kind": ["percent", "fixed"],
    "value": ["10", "5.00", "100", "0.001"],
    "valid_from": ["2026-10-01", "2026-11-01"],
    "valid_until": ["2026-12-31", "2026-09-30"],
    "effective": ["2026-10-16", "2026-11-01", "2026-09-01"],
    "status": ["active", "suspended", "closed", "finalized", "void", "held"],
    "timezone": ["UTC", "Asia/Kolkata", "America/Los_Angeles", "Mars/Base"],
    "currency": ["USD", "EUR", "KRW", "XYZ"],
    "tax_rate": ["8.25", "0", "100", "8.25%"],
    "email": ["billing@acme.test", "not-an-email"],
    "fmt": ["events", "envoy", "auto", "json", "csv", "table"],
    "output": ["json", "csv", "table"],
    "reason": ["customer confirmed", "duplicate"],
    "discount_id": ["1", "2", "999"],
    "ids": ["0-1", "1-0"],
    "at": ["2026-10-20T14:00Z"],
    "version": ["1", "2"],
    "line": ["1", "2", "99"],
    "amount": ["1.00", "0.01", "0.001", "1e30", "-5"],
    "settle": ["refund", "balance", "out-of-band"],
}
INTEGERS = {"limit", "top", "workers", "port", "max_events", "days", "window", "min_units", "threshold", "version"}
FILES = {"file", "path"}


def _text_file() -> st.SearchStrategy[bytes]:
    """Text in the wrong encoding, or binary."""
    return st.one_of(
        st.binary(max_size=2000),
        NASTY.map(lambda t: t.encode("utf-16")),
        NASTY.map(lambda t: t.encode("utf-8")),
        st.sampled_from([b"\xff\xfe\x00", b"\x89PNG\r\n\x1a\n\x00\x00", b"SQLite format 3\x00" + b"\x00" * 100]),
    )


def _toml_value() -> st.SearchStrategy[str]:
    return st.one_of(
        NASTY.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'),
        st.sampled_from(["1e400", "inf", "nan", "-5", "29.00", "true", "[]", "{}", "[[[[[[1]]]]]]", "2026-10-01"]),
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    )


def _plan_file() -> st.SearchStrategy[bytes]:
    """The basic plan with fields replaced by nasty values, and stray keys."""
    fields = ["name", "currency", "description", "base_fee", "included_units", "minimum", "unit_price", "model", "x"]
    edits = st.dictionaries(st.sampled_from(fields), _toml_value(), max_size=4)

    def build(changes: dict[str, str]) -> bytes:
        lines = ['name = "fuzz"', 'currency = "USD"', 'base_fee = "1.00"']
        top = {k: v for k, v in changes.items() if k not in ("unit_price", "model")}
        lines = [line for line in lines if line.split(" ")[0] not in top] + [f"{k} = {v}" for k, v in top.items()]
        lines += ["[price]", f"model = {changes.get('model', chr(34) + 'per_unit' + chr(34))}"]
        lines.append(f"unit_price = {changes.get('unit_price', chr(34) + '0.001' + chr(34))}")
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")

    return edits.map(build)


def _events_file() -> st.SearchStrategy[bytes]:
    value = st.one_of(_toml_value(), st.sampled_from(['"acme"', '"2026-10-10T12:00:00Z"', "1790000000000", "5"]))
    event = st.dictionaries(
        st.sampled_from(["tenant_id", "endpoint", "ts", "units", "event_id", "start_time", "response_code", "x"]),
        value,
        max_size=6,
    ).map(lambda d: ("{" + ", ".join(f'"{k}": {v}' for k, v in d.items()) + "}").encode("utf-8", "surrogatepass"))
    line = st.one_of(event, st.binary(max_size=60))
    return st.lists(line, max_size=8).map(lambda lines: b"\n".join(lines) + b"\n")


def _config_file() -> st.SearchStrategy[bytes]:
    keys = ["database.url", "billing.timezone", "usage.bucket_seconds", "stream.name", "monthly.hold_above", "x.y"]
    keys += ["stripe.api_key", "usage.max_past_days", "billing.invoice_number_pattern", "monthly.lock_stale_seconds"]
    entries = st.dictionaries(st.sampled_from(keys), _toml_value(), max_size=4)
    return entries.map(
        lambda d: "\n".join(f"[{k.split('.')[0]}]\n{k.split('.')[1]} = {v}" for k, v in d.items()).encode(
            "utf-8", "surrogatepass"
        )
    )


FILE_CONTENT = st.one_of(_text_file(), _plan_file(), _events_file(), _config_file()).map(File)


def _value(param) -> st.SearchStrategy[object]:  # type: ignore[no-untyped-def]
    name = param.name
    good = GOOD.get(name, [])
    if name in FILES:
        return st.one_of(FILE_CONTENT, st.sampled_from(["-", "nope.toml", "/", "."]), NASTY)
    if name in INTEGERS:
        numbers = st.integers(min_value=-(10**20), max_value=10**20).map(str)
        return st.one_of(numbers, st.sampled_from(good or ["1"]), NASTY)
    if good:
        return st.one_of(st.sampled_from(good), NASTY)
    return NASTY


def _option_args(param, value: object) -> list[object]:  # type: ignore[no-untyped-def]
    return [param.opts[0], value]


@st.composite
def invocation(draw, path: tuple[str, ...]) -> tuple[list[object], bytes | None]:  # type: ignore[no-untyped-def]
    """(argv with File placeholders, stdin) for the command at ``path``."""
    command = COMMANDS[path]
    args: list[object] = []
    # global options, sometimes
    if draw(st.integers(0, 5)) == 0:
        key = draw(
            st.sampled_from(
                [
                    "usage.bucket_seconds",
                    "usage.max_past_days",
                    "usage.max_future_seconds",
                    "billing.invoice_number_pattern",
                    "monthly.hold_above",
                    "monthly.hold_multiple",
                    "monthly.lock_stale_seconds",
                    "billing.adjustment_lookback_months",
                    "stream.name",
                    "output.format",
                    "nope.key",
                    "x" * 300,
                ]
            )
        )
        args += ["--set", f"{key}={draw(NASTY)}"]
    if draw(st.integers(0, 7)) == 0:
        args += ["--actor", draw(NASTY)]
    if draw(st.integers(0, 9)) == 0:
        args += ["--config", draw(FILE_CONTENT)]
    if draw(st.integers(0, 11)) == 0:
        url = draw(
            st.sampled_from(
                ["mysql://u@h/db", "sqlite:////nonexistent/dir/x.db", "not a url", "sqlite:///{notdb}", "oracle://x"]
            )
        )
        args += ["--database-url", url]
    args += list(path)
    for param in command.params:
        if param.param_type_name == "argument":
            if param.nargs == -1:
                args += draw(st.lists(_value(param), max_size=3))
            else:
                args.append(draw(_value(param)))
        elif getattr(param, "is_flag", False):
            if draw(st.booleans()):
                args.append(param.opts[0])
        elif param.required or draw(st.booleans()):
            args += _option_args(param, draw(_value(param)))
    stdin = draw(st.one_of(st.none(), FILE_CONTENT.map(lambda f: f.content)))
    return args, stdin


# -- the database ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_october(tmp_path_factory.mktemp("fuzz-seed"))


ENV = {
    "NO_COLOR": "1",
    "COLUMNS": "120",
    "BILLCTL_ACTOR": "fuzz",
    "BILLCTL_REDIS_URL": "redis://127.0.0.1:1/0",  # unreachable: commands that need Redis exit 5 at once
    "BILLCTL_MONTHLY_DRAIN_STREAM": "false",  # so run-monthly gets to finalize (it drains Redis otherwise)
    "BILLCTL_STRIPE_API_BASE": "http://127.0.0.1:1",  # never the internet, whatever a key says
}


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_any_input_gives_a_documented_exit_and_no_half_writes(
    path: tuple[str, ...], seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if (name.startswith("BILLCTL_") and not name.startswith("BILLCTL_TEST_")) or "STRIPE" in name:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    not_a_db = tmp_path / "notdb.db"
    not_a_db.write_bytes(b"hello, not a database")
    runs = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(invocation(path))
    def run(example: tuple[list[object], bytes | None]) -> None:
        argv, stdin = example
        work = tmp_path / f"run{next(runs)}"
        work.mkdir()
        db = work / "billctl.db"
        shutil.copy(seeded, db)
        args = []
        for i, arg in enumerate(argv):
            if isinstance(arg, File):
                file = work / f"input{i}"
                file.write_bytes(arg.content)
                arg = str(file)
            args.append(str(arg).replace("{notdb}", str(not_a_db)))
        skip = BOOKKEEPING.get(" ".join(path), frozenset())
        before = sqlite_snapshot(db, skip)
        result = CliRunner().invoke(
            app, ["--database-url", f"sqlite:///{db}", *args], input=stdin, env=ENV, catch_exceptions=True
        )
        shown = (
            f"billctl {' '.join(args)!r}\nexit {result.exit_code}\n"
            f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}"
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"unhandled {type(result.exception).__name__}: {result.exception}\n{shown}")
        assert result.exit_code in DOCUMENTED, shown
        assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, shown
        if result.exit_code in UNCHANGED_ON:
            assert sqlite_snapshot(db, skip) == before, f"the database changed although the command failed\n{shown}"

    run()
