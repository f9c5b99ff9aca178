"""Shared CLI plumbing: the context object and options used by several commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from billctl.cli.output import Format, Out

if TYPE_CHECKING:
    from billctl.errors import BillctlError
    from billctl.services.context import App


@dataclass
class State:
    """What the root callback leaves for every command. The settings are loaded, and the ``App``
    built, the first time a command asks for ``app``: `--help` and shell completion never do, so
    they read no config file and import no database code."""

    out: Out
    debug: bool = False
    load: Callable[[], App] | None = None
    loaded: App | None = None

    @property
    def app(self) -> App:
        if self.loaded is None:
            if self.load is None:
                raise RuntimeError("no settings to load")
            self.loaded = self.load()
        return self.loaded

    def output(self, fmt: Format | None) -> Out:
        self.out.fmt = (fmt.value if fmt else None) or self.app.config.output.format
        return self.out

    def close(self) -> None:
        if self.loaded is not None:
            self.loaded.dispose()


def state(ctx: typer.Context) -> State:
    obj: State = ctx.find_root().obj
    return obj


MAX_ID = 2**31 - 1  # ids and versions are 32-bit integers in the database

OutputOpt = Annotated[Format | None, typer.Option("--output", "-o", help="table, json or csv (default: output.format)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AllowOpenPeriodOpt = Annotated[
    bool,
    typer.Option(
        "--allow-open-period",
        help="Also finalize tenants whose month has not ended yet in their time zone (a partial month, "
        "billed for good; each such invoice's audit record says so).",
    ),
]


def confirm(out: Out, question: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal, fail fast unless --yes."""
    import sys

    from billctl.errors import BadInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{question} needs confirmation", hint="re-run with --yes (no terminal to ask on)")
    typer.confirm(question, default=False, err=True, abort=True)  # no: "Aborted!", exit 1 (Click's own)


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


def lazy_module(name: str) -> Any:
    """The module ``name``, imported when a command first uses one of its names (a command module
    imports its services this way, so `--help` and completion never import them). Declare the real
    module under ``TYPE_CHECKING`` for the type checker."""
    return _LazyModule(name)


def failure(code: int, message: str) -> BillctlError:
    """The error to raise for a run that reported its own outcome and ends with exit ``code``
    (partial, found, interrupted ...): the CLI exits only by raising ``billctl.errors`` classes."""
    from billctl import errors

    for kind in (errors.PartialFailure, errors.DriftFound, errors.Interrupted, errors.LockHeld, errors.SchemaBehind,
                 errors.Conflict, errors.DependencyDown, errors.ConfigError, errors.BadInput):  # fmt: skip
        if kind.exit_code == code:
            return kind(message)
    return errors.BillctlError(message)
