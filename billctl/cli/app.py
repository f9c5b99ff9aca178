"""The ``billctl`` command: global options, error handling, and the command groups."""

from __future__ import annotations

import sys
from typing import Annotated

import sqlalchemy as sa
import typer
from typer.core import TyperGroup

from billctl import __version__
from billctl.cli import STARTUP_PREVIOUS, startup_done
from billctl.cli.common import State
from billctl.cli.output import Out
from billctl.config import load_config, redact_url
from billctl.core.bounds import ACTOR, is_utf8, quote, text_problem
from billctl.errors import BadInput, BillctlError, ExitCode
from billctl.services.context import App


class BillctlGroup(TyperGroup):
    """Turns known errors into one line on stderr and a documented exit code (traceback only
    with --debug), for every subcommand, whether run from the shell or from a test runner."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        for arg in args:  # bytes that are not UTF-8 reach Python as lone surrogates: refuse them up front
            if not is_utf8(arg):
                raise typer.BadParameter(f"{quote(arg)} is not UTF-8 text", ctx=ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except BillctlError as exc:
            _report(ctx, exc, str(exc), exc.exit_code)
        except sa.exc.DBAPIError as exc:
            from billctl.db.engine import database_error

            obj = ctx.find_root().obj
            url = obj.app.config["database.url"] if obj is not None and obj.app is not None else ""
            error = database_error(exc, url)
            if error is None:
                _internal(ctx, exc)
            _report(ctx, exc, str(error), error.exit_code)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors and exits keep Click's own handling (exit 2 for usage)
        except Exception as exc:  # an internal error: say so, without a traceback unless --debug
            _internal(ctx, exc)


def _internal(ctx, exc: Exception) -> None:  # type: ignore[no-untyped-def]
    """An internal error (a bug, not bad input): one line, its first line only (a database error's
    text goes on with the statement and its parameters)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    message = f"internal error: {type(exc).__name__}: {first} (re-run with --debug for details)"
    _report(ctx, exc, message, ExitCode.ERROR)


def _report(ctx, exc: BaseException, message: str, code: int) -> None:  # type: ignore[no-untyped-def]
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
    rich_markup_mode="rich",
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
    out = Out(quiet=quiet)
    ctx.obj = State(app=None, out=out, debug=debug)  # type: ignore[arg-type]
    overrides: dict[str, str] = {}
    for item in setting or []:
        if "=" not in item:
            raise typer.BadParameter(f"{quote(item)} is not KEY=VALUE", param_hint="--set")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    if database_url is not None:
        overrides["database.url"] = database_url
    try:
        cfg = load_config(config, overrides)
        if actor and (problem := text_problem(actor, "--actor", ACTOR)):
            raise BadInput(problem, hint="the audit trail records it with every change")
    except BillctlError as exc:
        _report(ctx, exc, str(exc), exc.exit_code)
    billing_app = App(config=cfg)
    if actor:
        billing_app.actor = actor
    ctx.obj.app = billing_app
    ctx.call_on_close(billing_app.dispose)


def _register() -> None:
    from billctl.cli import config_cmd, db_cmd, discounts_cmd, invoices_cmd, plans_cmd, tenants_cmd, usage_cmd

    app.add_typer(config_cmd.app, name="config")
    app.add_typer(db_cmd.app, name="db")
    app.add_typer(tenants_cmd.app, name="tenants")
    app.add_typer(plans_cmd.app, name="plans")
    app.add_typer(discounts_cmd.app, name="discounts")
    app.add_typer(usage_cmd.app, name="usage")
    app.add_typer(invoices_cmd.app, name="invoices")
    from billctl.cli import report_cmd

    app.add_typer(report_cmd.app, name="report")
    from billctl.cli import stripe_cmd

    app.add_typer(stripe_cmd.app, name="stripe")
    from billctl.cli import monthly_cmd

    app.command("run-monthly")(monthly_cmd.run_monthly)
    app.add_typer(monthly_cmd.audit_app, name="audit")
    monthly_cmd.register_release(invoices_cmd.app)
    app.command("quickstart")(__import__("billctl.cli.quickstart_cmd", fromlist=["quickstart"]).quickstart)
    app.add_typer(__import__("billctl.cli.credits_cmd", fromlist=["app"]).app, name="credits")


_register()


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


__all__ = ["app", "main", "redact_url"]
