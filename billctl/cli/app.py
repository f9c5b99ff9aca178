"""The ``billctl`` command: global options, error handling, and the one table of command groups.

Start-up is part of the interface (shell completion runs billctl on every Tab), so this module and
what it imports stay light: a command group's module is imported only when that group is invoked,
`billctl --help` and completion of a group name are drawn from ``COMMANDS`` alone, settings are read
the first time a command asks for them (``State.app``), and the database, Stripe and Redis libraries
are imported by the services that use them. ``tests/integration/test_startup.py`` holds this.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from billctl import __version__
from billctl.cli import STARTUP_PREVIOUS, startup_done
from billctl.cli.common import State
from billctl.cli.output import Out
from billctl.errors import BadInput, BillctlError, ExitCode, render_refs


@dataclass(frozen=True)
class Entry:
    """One top-level command: where it lives (``module:attribute``, a ``typer.Typer`` for a group or
    a function for a single command) and its one-line help (shown by `billctl --help` without
    importing the module; a test checks it matches the module's own)."""

    target: str
    help: str


COMMANDS: dict[str, Entry] = {
    "config": Entry("billctl.cli.config_cmd:app", "Write and inspect settings."),
    "db": Entry("billctl.cli.db_cmd:app", "Database schema (Alembic migrations)."),
    "tenants": Entry("billctl.cli.tenants_cmd:app", "Tenants: who is billed, in which currency, time zone and plan."),
    "plans": Entry("billctl.cli.plans_cmd:app", "Price plans (TOML files), versioned once invoices use them."),
    "discounts": Entry(
        "billctl.cli.discounts_cmd:app", "Per-tenant discounts: percentage or fixed amount, with a validity window."
    ),
    "usage": Entry("billctl.cli.usage:app", "Usage: events in (stream, files), usage out (show, top, lag)."),
    "invoices": Entry(
        "billctl.cli.invoices:app",
        "Preview, finalize, inspect and correct invoices (void, credit notes: see `invoices credit --help`).",
    ),
    "report": Entry("billctl.cli.report_cmd:app", "Reports over finalized invoices."),
    "stripe": Entry(
        "billctl.cli.stripe_cmd:app",
        "Stripe: customers, invoice push, payment outcomes, reconciliation. Safe to re-run at any point.",
    ),
    "run-monthly": Entry(
        "billctl.cli.monthly_cmd:run_monthly",
        "Close a month end to end: lock, drain usage, finalize, hold suspicious invoices, write off expired "
        "credits, Stripe customers, push, payment status, credit alerts, summary. Safe to re-run after a crash "
        "at any point.",
    ),
    "credits": Entry(
        "billctl.cli.credits_cmd:app", "Prepaid credits: grants, balances, the ledger, burn-down alerts and expiry."
    ),
    "audit": Entry("billctl.cli.audit_cmd:app", "The audit trail: every state change, who made it and why."),
    "quickstart": Entry(
        "billctl.cli.quickstart_cmd:quickstart",
        "Close a sample month on SQLite in DIR, step by step, from the data shipped with billctl.",
    ),
}
"""Every top-level command, in the order `billctl --help` lists them. A new command group is one line
here (its module defines ``app = typer.Typer(help=...)``)."""


def load_command(name: str, entry: Entry) -> Any:
    """Import the module behind ``entry`` and build its Click command (group)."""
    module, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    command: Any
    if isinstance(target, typer.Typer):  # a group (even of one command, as `report`)
        command = typer.main.get_group(target)
        command.name = name
    else:  # a single command: a function
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    _tune(command)
    return command


def _tune(command: Any) -> None:
    """Two start-up savings, for a whole command tree:

    * help as plain text (Click's own layout): Rich's help renderer (its Markdown and markup
      parsers) costs more start-up than the rest of `billctl GROUP --help` together;
    * an option left unset is not coerced: Typer coerces every value through a Pydantic adapter,
      and importing Pydantic for a ``None`` costs about as much as Typer itself."""
    command.rich_markup_mode = None
    get_params = command.get_params

    def tuned_params(ctx: typer.Context) -> list[Any]:
        ctx.meta[LEAF] = ctx  # the innermost command parsed last: errors name its options (see _wording)
        params = get_params(ctx)  # with --help, which Typer adds here
        for param in params:
            _skip_unset(param)
        return params

    command.get_params = tuned_params
    for sub in getattr(command, "commands", {}).values():
        _tune(sub)


def _skip_unset(param: Any) -> None:
    if "process_value" in vars(param) or not hasattr(param, "get_runtime_param"):
        return  # done already, or not a Typer parameter

    original = param.process_value

    def process_value(ctx: typer.Context, value: Any) -> Any:
        unset = param.default is None and (value is None or (param.multiple and value == ()))
        flag = getattr(param, "is_flag", False) and isinstance(value, bool)  # a bool needs no coercion
        if param.required or not (unset or flag):
            return original(ctx, value)
        value = None if unset else value
        return value if param.callback is None else param.callback(ctx, param, value)

    param.process_value = process_value


class BillctlGroup(TyperGroup):
    """The root group. Its subcommands come from ``COMMANDS``, imported on first use; it turns known
    errors into one line on stderr and a documented exit code (traceback only with --debug), for
    every subcommand, whether run from the shell or from a test runner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loaded: dict[str, Any] = {}
        self._stubs = False
        super().__init__(*args, **kwargs)

    # -- the lazy command table ------------------------------------------------------------------
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if cmd_name in self._loaded:
            return self._loaded[cmd_name]
        if self._stubs:  # listing names and one-line helps: no need to import the group
            return TyperCommand(cmd_name, help=entry.help)
        command = self._loaded[cmd_name] = load_command(cmd_name, entry)
        return command

    @property  # type: ignore[override]  # Click declares a plain attribute; here a view of the table
    def commands(self) -> Mapping[str, Any]:  # every command loaded (tools that walk the tree)
        return {name: command for name in COMMANDS if (command := self.get_command(typer.Context(self), name))}

    @commands.setter
    def commands(self, _value: Mapping[str, Any]) -> None:
        pass  # Click sets it in __init__; the table is the only source

    @contextmanager
    def _listing(self) -> Iterator[None]:
        self._stubs = True
        try:
            yield
        finally:
            self._stubs = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._listing():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        with self._listing():
            return super().shell_complete(ctx, incomplete)

    # -- input and errors ------------------------------------------------------------------------
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # with --help and the completion options Typer adds
        for param in params:
            _skip_unset(param)
        return params

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from billctl.core.bounds import is_utf8, quote

        for arg in args:  # bytes that are not UTF-8 reach Python as lone surrogates: refuse them up front
            if not is_utf8(arg):
                raise typer.BadParameter(f"{quote(arg)} is not UTF-8 text", ctx=ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BillctlError as exc:
            _report(ctx, exc, _wording(ctx, exc), exc.exit_code)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors and exits keep Click's own handling (exit 2 for usage)
        except Exception as exc:  # a database error, else an internal one: without a traceback unless --debug
            error = _database_error(ctx, exc)
            if error is None:
                _internal(ctx, exc)
            else:
                _report(ctx, exc, str(error), error.exit_code)


LEAF = "billctl.leaf"  # ctx.meta key (shared by every context of one run): the command being run


def _wording(ctx: typer.Context, exc: BillctlError) -> str:
    """The error as the operator reads it: each field the service referred to (``errors.ref``) shown as
    the option of the failing command that sets it (``until`` -> ``--until``), else by its name."""
    leaf = ctx.meta.get(LEAF)
    options: dict[str, str] = {}
    for param in getattr(getattr(leaf, "command", None), "params", []):
        longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if longs and param.name:
            options[param.name] = longs[0]
            options.setdefault(longs[0][2:], longs[0])

    def flag_of(field: str) -> str | None:
        return options.get(field) or options.get(field.replace("-", "_"))

    message = render_refs(exc.template, flag_of)
    hint = render_refs(exc.hint_template, flag_of) if exc.hint_template else None
    return f"{message} ({hint})" if hint else message


def _database_error(ctx: typer.Context, exc: Exception) -> BillctlError | None:
    """The operator's error for a database failure (None for anything else). SQLAlchemy is only
    looked at when a command has imported it."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.DBAPIError):
        return None
    from billctl.db.engine import database_error

    obj = ctx.find_root().obj
    url = obj.loaded.config.database.url if obj is not None and obj.loaded is not None else ""
    return database_error(exc, url)


def _internal(ctx: typer.Context, exc: Exception) -> None:
    """An internal error (a bug, not bad input): one line, its first line only (a database error's
    text goes on with the statement and its parameters)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    message = f"internal error: {type(exc).__name__}: {first} (re-run with --debug for details)"
    _report(ctx, exc, message, ExitCode.ERROR)


def _report(ctx: typer.Context, exc: BaseException, message: str, code: int) -> None:
    obj = ctx.find_root().obj
    if obj is not None and obj.debug:
        raise exc
    out = obj.out if obj is not None else Out()
    out.error(message)
    raise typer.Exit(int(code))


app = typer.Typer(
    cls=BillctlGroup,
    name="billctl",
    help="Billing operations for SaaS: metered API usage to exact invoices and Stripe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # never print locals (they can hold secrets)
    rich_markup_mode=None,  # plain help: see _tune
    context_settings={"max_content_width": 120},  # plain help up to 120 columns (Click's own cap is 80)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"billctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="TOML config file (default ./billctl.toml; env BILLCTL_CONFIG)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides database.url.", show_default=False)
    ] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any setting: --set usage.bucket_seconds=60 (repeatable)."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", envvar="BILLCTL_ACTOR", help="Who is acting, for the audit log (default: $USER)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data on stdout; no progress or notes.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    from billctl.core.bounds import ACTOR, quote, text_problem

    st = State(out=Out(quiet=quiet), debug=debug)
    ctx.obj = st
    overrides: dict[str, str] = {}
    for item in setting or []:
        if "=" not in item:
            raise typer.BadParameter(f"{quote(item)} is not KEY=VALUE", param_hint="--set")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    if database_url is not None:
        overrides["database.url"] = database_url
    if actor and (problem := text_problem(actor, "--actor", ACTOR)):
        raise BadInput(problem, hint="the audit trail records it with every change")

    def load() -> Any:  # the settings and the App, the first time a command needs them
        from billctl.config import load_config
        from billctl.services.context import App

        billing_app = App(config=load_config(config, overrides))
        if actor:
            billing_app.actor = actor
        return billing_app

    st.load = load
    ctx.call_on_close(st.close)


def main() -> None:
    import signal
    import threading

    from billctl.cli import exit_on_sigterm

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, exit_on_sigterm)  # until a long command installs its graceful stop
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


startup_done(STARTUP_PREVIOUS)  # the imports are done: importing this module leaves SIGTERM as it was


__all__ = ["COMMANDS", "app", "main"]
