"""One output object for every command: data to stdout as table, JSON or CSV; messages to stderr.

No colour or animation when the stream is not a terminal or NO_COLOR is set (Rich honours both).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Rich is imported when something is printed (not for --help or completion)
    from rich.console import Console

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline
MAX_LINE = 2000  # characters of one message line; the rest is cut (input echoed back stays readable)


def clean(text: str, *, markup: bool = False) -> str:
    """Text for the terminal: control characters shown as \\xNN (never sent to the terminal), each line
    cut to MAX_LINE characters, and, unless it is deliberate ``markup``, square brackets escaped so
    user data such as a tenant named ``[/x]`` prints as itself instead of breaking the renderer."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", _utf8(str(text)))
    if len(text) > MAX_LINE:
        text = "\n".join(
            line if len(line) <= MAX_LINE else f"{line[:MAX_LINE]}… ({len(line) - MAX_LINE:,} more characters)"
            for line in text.split("\n")
        )
    return text if markup else escape(text)


def escape(text: str) -> str:
    """Rich's markup escape (square brackets print as themselves), importing Rich only when used."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _utf8(text: str) -> str:
    """Lone surrogates (bytes that were not UTF-8, in an argument or a file) as \\udcff, so printing
    never fails; in JSON that is the same escape a JSON parser reads back."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@dataclass
class Out:
    fmt: str = "table"
    quiet: bool = False
    _console: Console | None = None
    _err: Console | None = None

    @property
    def console(self) -> Console:
        """Data: stdout (created, and Rich imported, when first used)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=False, emoji=False)
        return self._console

    @property
    def err(self) -> Console:
        """Messages: stderr."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(file=sys.stderr, highlight=False, emoji=False)
        return self._err

    # -- messages (stderr): plain text unless ``markup=True`` (then escape the data in it) --
    def info(self, message: str, *, markup: bool = False) -> None:
        if not self.quiet:
            self.err.print(clean(message, markup=markup))

    def success(self, message: str, *, markup: bool = False) -> None:
        if not self.quiet:
            self.err.print(f"[green]✓[/green] {clean(message, markup=markup)}")

    def warn(self, message: str, *, markup: bool = False) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {clean(message, markup=markup)}")

    def error(self, message: str, *, markup: bool = False) -> None:
        self.err.print(f"[red]error:[/red] {clean(message, markup=markup)}", soft_wrap=True)

    # -- data (stdout) --
    def json(self, document: Any) -> None:
        sys.stdout.write(_utf8(json.dumps(document, indent=2, ensure_ascii=False, default=str)) + "\n")
        sys.stdout.flush()

    def csv(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
        sys.stdout.write(_utf8(buffer.getvalue()))
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        right: Sequence[str] = (),
        caption: str | None = None,
        footer: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Cells are data, never markup (a description may contain [brackets]); ``footer`` rows are bold."""
        from rich.table import Table

        table = Table(title=clean(title) if title else None, caption=caption, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*[clean("" if v is None else str(v)) for v in row])
        for row in footer:
            table.add_row(*[clean("" if v is None else str(v)) for v in row], style="bold")
        self.console.print(table)

    def rows(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        documents: list[dict] | None = None,
        title: str | None = None,
        right: Sequence[str] = (),
    ) -> None:
        """A list in the chosen format; JSON uses ``documents`` (one object per row) when given."""
        if self.fmt == "json":
            self.json(documents if documents is not None else [dict(zip(columns, r, strict=True)) for r in rows])
        elif self.fmt == "csv":
            self.csv(columns, rows)
        else:
            self.table(columns, rows, title=title, right=right)
