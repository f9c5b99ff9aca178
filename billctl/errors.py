"""Errors an operator can act on, each with a documented exit code.

The CLI turns a ``BillctlError`` into one line on stderr (no traceback unless
``--debug``) and exits with its ``exit_code``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # a failure that fits no other code: an internal error, reported in one line (--debug: traceback)
    USAGE = 2  # bad flags or arguments: an unknown option, a missing argument (Typer/Click also use 2)
    BAD_INPUT = 3  # bad input: unknown tenant/plan/invoice, bad period or zone, bad file, --yes needed (no terminal)
    CONFIG = 4  # bad configuration: file, setting or environment variable (the key and the fix are named)
    DEPENDENCY = 5  # a dependency is down or unreachable: database, Redis, Stripe (after retries)
    PARTIAL = 6  # finished, some items failed or held: Stripe failures or drafts that differ, import --strict rejects
    LOCKED = 7  # another run holds the lock
    SCHEMA = 8  # the database schema is behind: run `billctl db upgrade`
    CONFLICT = 9  # conflicts with stored state: a plan change in a finalized period, voiding a paid invoice ...
    FOUND = 10  # a check found something to report (anomalies, drift)
    INTERRUPTED = 143  # stopped by SIGTERM after leaving consistent state


class BillctlError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(BillctlError):
    exit_code = ExitCode.BAD_INPUT


class NotFound(BadInput):
    pass


class ConfigError(BillctlError):
    exit_code = ExitCode.CONFIG


class DependencyDown(BillctlError):
    exit_code = ExitCode.DEPENDENCY


class SchemaBehind(BillctlError):
    exit_code = ExitCode.SCHEMA


class Conflict(BillctlError):
    exit_code = ExitCode.CONFLICT


class LockHeld(BillctlError):
    exit_code = ExitCode.LOCKED
