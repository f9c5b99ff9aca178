"""Record the terminal screens the documentation and the README show, from real runs.

    python scripts/screens.py           # write docs/screens/*.txt and *.svg, and the README's screen
    python scripts/screens.py --check   # exit 1, with a diff, when a committed text screen is stale

It runs `billctl quickstart` in a scratch directory (through the Typer app object, in-process), cuts
its transcript into one screen per step, then runs a few more scenes on the same month (explain,
late usage and recompute, an anomaly, exports, errors). Output is captured as a 120-column colour
terminal would show it; the .txt screens are its plain text (what the docs include with snippets,
and what --check compares), the .svg ones Rich's rendering of the colours.

Parts that change from run to run (the wall-clock time invoices were finalized at, step durations)
are masked by --check only (MASKS below); the screens themselves keep the real values.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "docs" / "screens"
README = ROOT / "README.md"
APP = "billctl.cli.app:app"
WIDTH = 120
SVG = ("run-monthly-dry-run", "invoices-explain")  # the screens also rendered in colour

# What differs between two honest runs, per screen (a name prefix): when invoices were finalized,
# how long a step took, Stripe's ids and clock, Redis entry ids, log times and run ids, rates.
MASKS = (
    ("", re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b(?= +│ *$)", re.M), "YYYY-MM-DD hh:mm"),  # a time, last column
    ("", re.compile(r"(│ (?:usage|finalize|guardrails|customers|push|status) +│ \w+ +│) +\d+\.\d+ │"), r"\1 s.s │"),
    ("stripe-", re.compile(r"\b(in|cus|evt|cn)_[A-Za-z0-9]+"), r"\1_ID"),
    ("stripe-", re.compile(r"127\.0\.0\.1:\d+ *"), "127.0.0.1:PORT"),
    ("stripe-", re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b"), "YYYY-MM-DD hh:mm"),
    ("stream-", re.compile(r"\b\d{13}-\d+\b"), "ENTRY-ID"),
    ("stream-", re.compile(r"in \d+\.\d s \([\d,]+/s\)"), "in S s (R/s)"),
    ("run-monthly-logs", re.compile(r'"(ts|run_id|seconds)":("[^"]*"|[\d.]+)'), r'"\1":X'),
)

# quickstart steps saved as screens: (command line prefix, occurrence) -> name
TOUR_SCREENS = {
    ("billctl db upgrade", 1): "db-upgrade",
    ("billctl usage import", 1): "usage-import",
    ("billctl usage import", 2): "usage-import-again",
    ("billctl invoices preview", 1): "invoices-preview",
    ("billctl run-monthly --period 2026-10 --dry-run", 1): "run-monthly-dry-run",
    ("billctl run-monthly --period 2026-10 --yes", 1): "run-monthly",
    ("billctl run-monthly --period 2026-10 --yes", 2): "run-monthly-again",
    ("billctl invoices list", 1): "invoices-list",
    ("billctl invoices show", 1): "invoices-show",
}
README_SCREEN = "run-monthly-dry-run"

LATE = '{"tenant_id":"globex","endpoint":"/v1/search","ts":"2026-10-20T10:00:00Z","units":20000,"event_id":"late-1"}\n'
BAD_PLAN = """name = "bad"
currency = "USD"
base_fe = "10.00"
[price]
model = "graduated"
tiers = [{ up_to = 1000, unit_price = "0.01" }, { up_to = 5000, unit_price = "-1" }]
"""


class Terminal(io.StringIO):
    """Where the commands print: a colour terminal, as far as they can tell."""

    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@dataclass
class Screen:
    name: str
    ansi: str

    @property
    def text(self) -> str:
        from rich.text import Text

        plain = Text.from_ansi(self.ansi).plain
        return "\n".join(line.rstrip() for line in plain.splitlines()).strip("\n") + "\n"


@contextlib.contextmanager
def _environment(directory: Path) -> Iterator[None]:
    """In ``directory``, without the shell's billctl, Stripe or colour settings (restored afterwards)."""
    from unittest import mock

    dropped = ("NO_COLOR", "FORCE_COLOR", "COLORTERM")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("BILLCTL_", "STRIPE_")) and k not in dropped}
    fixed = {"COLUMNS": str(WIDTH), "LINES": "50", "TERM": "xterm-256color", "BILLCTL_ACTOR": "docs"}
    with mock.patch.dict(os.environ, {**keep, **fixed}, clear=True), contextlib.chdir(directory):
        yield


def _command() -> object:
    import typer

    module, _, name = APP.partition(":")
    return typer.main.get_command(getattr(importlib.import_module(module), name))


def run(
    args: list[str], *, stderr_tty: bool = True, env: dict[str, str] | None = None, stderr_only: bool = False
) -> tuple[int, str]:
    """One billctl command line in-process: (exit code, what the terminal shows: stdout and stderr)."""
    command = _command()
    terminal = Terminal()
    err = terminal if stderr_tty else _Tee(terminal)
    if stderr_only:
        terminal, err = Terminal(tty=False), Terminal(tty=stderr_tty)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(err):  # type: ignore[type-var]
            code = command.main(args=args, prog_name="billctl", standalone_mode=False)  # type: ignore[attr-defined]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return int(code or 0), (err if stderr_only else terminal).getvalue()


class _Tee(io.StringIO):
    """stderr that is not a terminal (no progress bars), written into the same screen."""

    def __init__(self, target: Terminal) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        return self.target.write(text)

    def isatty(self) -> bool:
        return False


def _prompt(args: list[str], shown: str | None = None) -> str:
    line = shown or "billctl " + " ".join(shlex.quote(a) for a in args)
    return f"\x1b[1m$ {line}\x1b[0m\n"


def scene(*steps: tuple[list[str], str | None], stderr_tty: bool = True, env: dict[str, str] | None = None) -> str:
    """Several command lines in one screen, each after its prompt, with [exit N] when not 0."""
    out = []
    for args, shown in steps:
        code, text = run(args, stderr_tty=stderr_tty, env=env)
        out.append(_prompt(args, shown) + text + (f"[exit {code}]\n" if code else ""))
    return "".join(out)


def record(directory: Path) -> list[Screen]:
    screens: list[Screen] = []
    with _environment(directory.parent):
        code, transcript = run(["quickstart", directory.name])
    if code:
        raise SystemExit(f"billctl quickstart exited {code}:\n{transcript}")
    seen: dict[str, int] = {}
    ansi = r"(?:\x1b\[[\d;]*m)*"
    steps = re.split(rf"\n(?={ansi}✓{ansi} October 2026 closed)", transcript)[0]  # without the closing lines
    for block in re.split(r"\n(?=(?:\x1b\[[\d;]*m)*\$ billctl )", steps):
        plain = re.sub(r"\x1b\[[\d;]*m", "", block)
        if not plain.startswith("$ billctl "):
            continue
        line = plain.splitlines()[0][2:].split("   #")[0]
        for (prefix, nth), name in TOUR_SCREENS.items():
            if line.startswith(prefix):
                seen[prefix] = seen.get(prefix, 0) + 1
                if seen[prefix] == nth:
                    screens.append(Screen(name, block.rstrip("\n") + "\n"))
    screens.append(Screen("quickstart", transcript))

    with _environment(directory):
        (directory / "late.ndjson").write_text(LATE)
        (directory / "bad.toml").write_text(BAD_PLAN)
        screens.append(Screen("invoices-explain", scene((["invoices", "explain", "INV-2026-10-000001"], None))))
        screens.append(Screen("explain-steps-json", _explain_steps()))
        screens.append(
            Screen(
                "errors",
                scene(
                    (["invoices", "preview", "--period", "2026-13"], None),
                    (["tenants", "create", "zz", "--timezone", "Mars/Olympus"], None),
                    (["plans", "create", "--file", "bad.toml"], None),
                ),
            )
        )
        screens.append(Screen("stripe-no-key", scene((["stripe", "push"], None))))
        live = {"STRIPE_API_KEY": "sk_live_" + "0" * 24}
        screens.append(
            Screen(
                "stripe-live-key-refused",
                scene(
                    (
                        ["--set", "stripe.api_base=http://127.0.0.1:12111", "stripe", "push"],
                        "billctl --set stripe.api_base=http://127.0.0.1:12111 stripe push   # STRIPE_API_KEY=sk_live_…",
                    ),
                    env=live,
                ),
            )
        )
        screens.append(Screen("config-show", scene((["config", "show"], None))))
        screens.append(Screen("export-csv", _head(["invoices", "export", "--period", "2026-10", "--format", "csv"], 5)))
        screens.append(
            Screen(
                "late-usage-recompute",
                scene(
                    (["usage", "import", "late.ndjson"], None),
                    (["invoices", "recompute", "--period", "2026-10"], None),
                    (["invoices", "recompute", "--period", "2026-10", "--tenant", "globex", "--diff"], None),
                    stderr_tty=False,
                ),
            )
        )
        november = ["invoices", "preview", "--period", "2026-11", "--tenant", "globex"]
        screens.append(Screen("invoices-preview-november", scene((november, None))))
        screens.append(Screen("report-revenue", scene((["report", "revenue", "--period", "2026-10"], None))))
        credit = ["invoices", "credit", "INV-2026-10-000001", "--line", "2", "--reason", "outage 2026-10-14", "--yes"]
        too_much = ["invoices", "credit", "INV-2026-10-000001", "--amount", "100", "--reason", "goodwill", "--yes"]
        screens.append(Screen("invoices-credit", scene((credit, None), (too_much, None))))
        burst = "".join(
            f'{{"tenant_id":"umbrella","endpoint":"/v1/ocr","ts":"2026-10-30T15:{m:02d}:00Z","units":300,'
            f'"event_id":"burst-{m}"}}\n'
            for m in range(60)
        )
        (directory / "burst.ndjson").write_text(burst)  # 18,000 units in one hour; umbrella's usual is ~20
        at = ["usage", "anomalies", "--at", "2026-10-30T15:00Z"]
        screens.append(Screen("anomalies", scene((at, None), (["usage", "import", "burst.ndjson"], None), (at, None))))
        screens.append(Screen("run-monthly-logs", _logs()))
        screens.extend(_stripe_scenes())
        screens.extend(_stream_scenes())
    return screens


def _logs() -> str:
    """run-monthly's JSON log lines, as a CronJob's pod log shows them (stderr, not a terminal)."""
    args = ["run-monthly", "--period", "2026-10", "--dry-run"]
    code, text = run(args, stderr_tty=False, stderr_only=True)
    shown = "billctl run-monthly --period 2026-10 --dry-run 2>&1 >/dev/null | head -3   # not at a terminal"
    return _prompt(args, shown) + "".join(text.splitlines(True)[:3])


def _stripe_scenes() -> list[Screen]:
    """The close's Stripe steps against FakeStripe (from the repository's tests), with a failed card."""
    sys.path.insert(0, str(ROOT))
    from tests.fakestripe import FakeStripe

    with FakeStripe(api_key_prefix="sk_test_") as fake:
        env = {"STRIPE_API_KEY": "sk_test_rehearsal", "BILLCTL_STRIPE_API_BASE": fake.url, "COLUMNS": "132"}
        fake.set_payment_outcome("umbrella", "fail")
        check = (["stripe", "check"], None)
        push = (["stripe", "push", "--period", "2026-10"], None)
        return [
            Screen("stripe-check", scene(check, env=env)),
            Screen("stripe-push", scene(push, (["stripe", "push"], None), stderr_tty=False, env=env)),
            Screen(
                "stripe-sync-status",
                scene((["stripe", "sync-status"], None), (["stripe", "reconcile"], None), env=env),
            ),
        ]


def _stream_scenes() -> list[Screen]:
    """The stream: two good entries, a producer's retry and an unknown tenant, counted and replayed.
    Needs the Redis at BILLCTL_TEST_REDIS_URL (default: the local one); uses keys of its own."""
    import redis

    url = os.environ.get("BILLCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = "billctl-docs:api_stream"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.delete(name, f"{name}:dead")
    env = {
        "BILLCTL_REDIS_URL": url,
        "BILLCTL_STREAM_NAME": name,
        "BILLCTL_STREAM_DEAD_LETTER": "api_stream:dead",
        "TERM": "dumb",
        "COLUMNS": "120",
    }  # a dumb terminal: the live progress line is not drawn
    try:
        for fields in (
            {"tenant_id": "acme", "endpoint": "/v1/ocr", "ts": "2026-11-02T10:00:00Z", "units": 1, "event_id": "r-1"},
            {"tenant_id": "acme", "endpoint": "/v1/ocr", "ts": "2026-11-02T10:00:00Z", "units": 1, "event_id": "r-1"},
            {"tenant_id": "globex", "endpoint": "/v1/search", "ts": "2026-11-02T10:00:01Z", "event_id": "r-2"},
            {"tenant_id": "wayne", "endpoint": "/v1/search", "ts": "2026-11-02T10:00:02Z", "event_id": "r-3"},
        ):
            client.xadd(name, fields)
        first = scene(
            (["usage", "aggregate", "--dry-run"], None),
            (["usage", "aggregate"], None),
            (["usage", "dead-letters", "list"], None),
            env=env,
        )
        replay = scene(
            (["tenants", "create", "wayne", "--name", "Wayne Enterprises"], None),
            (["usage", "dead-letters", "replay", "--yes"], None),
            (["usage", "aggregate"], None),
            env=env,
        )
    finally:
        client.delete(name, f"{name}:dead", "api_stream:dead")
        client.close()
    return [Screen("stream-aggregate", first), Screen("stream-replay", replay)]


def _explain_steps() -> str:
    import json

    args = ["invoices", "explain", "INV-2026-10-000003", "-o", "json"]
    code, text = run(args, stderr_tty=False)
    steps = json.loads(text)["lines"][0]["steps"]
    shown = "billctl invoices explain INV-2026-10-000003 -o json | jq -c '.lines[0].steps[] | [.step, .value]'"
    body = "".join(json.dumps([s["step"], s["value"]], ensure_ascii=False) + "\n" for s in steps)
    return _prompt(args, shown) + body


def _head(args: list[str], lines: int) -> str:
    code, text = run(args, stderr_tty=False)
    shown = "billctl " + " ".join(args) + f" | head -{lines}"
    return _prompt(args, shown) + "".join(text.splitlines(True)[:lines])


def masked(name: str, text: str) -> str:
    for prefix, pattern, replacement in MASKS:
        if name.startswith(prefix):
            text = pattern.sub(replacement, text)
    return text


def readme_with(screen: Screen, readme: str) -> str:
    block = f"<!-- screen: {screen.name} -->\n```text\n{screen.text}```\n<!-- /screen -->"
    return re.sub(rf"<!-- screen: {screen.name} -->.*?<!-- /screen -->", lambda _m: block, readme, flags=re.S)


def _svg(screen: Screen, path: Path) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(Text.from_ansi(screen.ansi), soft_wrap=True)
    console.save_svg(str(path), title=screen.name)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="billctl-screens-") as tmp:
        screens = record(Path(tmp) / "month")
    readme = README.read_text()
    wanted = {f"{s.name}.txt": s.text for s in screens}
    new_readme = readme_with(next(s for s in screens if s.name == README_SCREEN), readme)
    if "--check" in argv:
        stale = []
        for name, text in sorted(wanted.items()):
            path = SCREENS / name
            current = path.read_text() if path.exists() else ""
            if masked(name, current) != masked(name, text):
                stale.append(name)
                before, after = masked(name, current).splitlines(True), masked(name, text).splitlines(True)
                sys.stdout.writelines(difflib.unified_diff(before, after, name, "now"))
        if masked("", readme) != masked("", new_readme):
            stale.append("README.md")
        if stale:
            print(f"\nstale screens: {', '.join(stale)}; run `make screens` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(wanted)} screens and the README's are current")
        return 0
    SCREENS.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (SCREENS / name).write_text(text)
    for screen in screens:
        if screen.name in SVG:
            _svg(screen, SCREENS / f"{screen.name}.svg")
    README.write_text(new_readme)
    print(f"wrote {len(wanted)} screens in {SCREENS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
