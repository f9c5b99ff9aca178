"""Errors an operator can act on, each with a documented exit code.

The CLI turns a ``BillctlError`` into one line on stderr (no traceback unless
``--debug``) and exits with its ``exit_code``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # a failure that fits no other code: an internal error, a bug, reported in one line (--debug: traceback);
    #            bad input never gives 1 (a property test drives every command with generated input to check it)
    USAGE = 2  # bad flags or arguments: an unknown option, a missing argument, an integer option out of its range,
    #            an argument that is not UTF-8 (Typer/Click also use 2)
    BAD_INPUT = 3  # bad input: unknown tenant/plan/invoice, bad period or zone, a value out of its bounds, a bad file
    #                (invalid, too large, not UTF-8), a period not over for any tenant asked for (without
    #                --allow-open-period), --yes needed (no terminal)
    CONFIG = 4  # bad configuration: file, setting or environment variable (the key and the fix are named), also an
    #             unsupported database URL, a missing database directory, a file that is not a SQLite database
    DEPENDENCY = 5  # a dependency is down or unusable: database, Redis, Stripe unreachable (after retries), a
    #                 read-only database
    PARTIAL = 6  # finished, some items failed, held or not due: a tenant that failed at finalize or whose month is not
    #              over, Stripe failures or drafts that differ, import --strict rejects
    LOCKED = 7  # another run holds the lock
    SCHEMA = 8  # the database schema is behind or missing (also: no SQLite file at the path): run `billctl db upgrade`
    CONFLICT = 9  # conflicts with stored state: a plan change in a finalized period, voiding a paid invoice ...
    FOUND = 10  # a check found something to report (anomalies, drift)
    INTERRUPTED = 143  # stopped by SIGTERM after leaving consistent state (also during start-up)


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
