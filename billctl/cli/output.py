"""One output object for every command: data to stdout as table, JSON or CSV; messages to stderr.

No colour or animation when the stream is not a terminal or NO_COLOR is set (Rich honours both).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@dataclass
class Out:
    fmt: str = "table"
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(file=sys.stdout, highlight=False, soft_wrap=False))
    err: Console = field(default_factory=lambda: Console(file=sys.stderr, highlight=False))

    # -- messages (stderr) --
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def success(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[green]✓[/green] {message}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/red] {message}", soft_wrap=True)

    # -- data (stdout) --
    def json(self, document: Any) -> None:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def csv(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
        sys.stdout.write(buffer.getvalue())
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
        table = Table(
            title=escape(title) if title else None, caption=caption, title_justify="left", header_style="bold"
        )
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*[escape("" if v is None else str(v)) for v in row])
        for index, row in enumerate(footer):
            table.add_row(
                *[escape("" if v is None else str(v)) for v in row], style="bold", end_section=False if index else None
            )
        self.console.print(table)

    def rows(
        self,
        columns: Sequence[str],
        rows: list[Sequence[Any]],
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
