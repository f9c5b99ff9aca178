"""Record the terminal screens the documentation and the README show, from real runs.

    python scripts/screens.py           # write docs/screens/*.txt and *.svg, and the README's screen
    python scripts/screens.py --check   # exit 1, with a diff, when a committed text screen is stale

It runs `billctl quickstart` in a scratch directory (through the Typer app object, in-process), cuts
its transcript into one screen per step, then runs a few more scenes on the same month (explain,
late usage and recompute, an anomaly, exports, errors). Output is captured as a 100-column colour
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
WIDTH = 100
SVG = ("run-monthly-dry-run", "invoices-explain")  # the screens also rendered in colour

# What differs between two honest runs: when the invoices were finalized, how long a step took.
MASKS = (
    (re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b(?= +│ *$)", re.M), "YYYY-MM-DD hh:mm"),  # last column: a time
    (re.compile(r"(│ (?:usage|finalize|guardrails|customers|push|status) +│ \w+ +│) +\d+\.\d+ │"), r"\1 s.s │"),
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
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    for name in list(os.environ):
        if name.startswith(("BILLCTL_", "STRIPE_")) or name in ("NO_COLOR", "FORCE_COLOR", "COLORTERM"):
            del os.environ[name]
    os.environ.update({"COLUMNS": str(WIDTH), "LINES": "50", "TERM": "xterm-256color", "BILLCTL_ACTOR": "docs"})
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _command() -> object:
    import typer

    module, _, name = APP.partition(":")
    return typer.main.get_command(getattr(importlib.import_module(module), name))


def run(args: list[str], *, stderr_tty: bool = True, env: dict[str, str] | None = None) -> tuple[int, str]:
    """One billctl command line in-process: (exit code, what the terminal shows: stdout and stderr)."""
    command = _command()
    terminal = Terminal()
    err = terminal if stderr_tty else _Tee(terminal)
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
    return int(code or 0), terminal.getvalue()


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
    return screens


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


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
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
            if masked(current) != masked(text):
                stale.append(name)
                sys.stdout.writelines(
                    difflib.unified_diff(masked(current).splitlines(True), masked(text).splitlines(True), name, "now")
                )
        if masked(readme) != masked(new_readme):
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
