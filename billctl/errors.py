"""Every error billctl raises on purpose, in one module, each with its documented exit code.

Two families:

* ``BillctlError`` and its subclasses: errors an operator can act on. The CLI turns one into a single
  line on stderr (no traceback unless ``--debug``) and exits with its ``exit_code``; commands never
  call ``sys.exit`` or ``typer.Exit`` with a code of their own, they raise one of these.
* ``DomainError`` and its subclasses: what the pure core (money, periods, plans, events, credit notes)
  refuses. They are ``ValueError``s with no knowledge of commands or flags; the services catch them and
  re-raise a ``BillctlError`` naming the field or file at fault (``field=``).

This module imports nothing from billctl, so every layer may import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(plain(message))
        self.message = plain(message)  # the field references (see ``ref``) as plain names
        self.hint = plain(hint) if hint is not None else None
        self.template = message  # with the references marked: the CLI shows each as its option
        self.hint_template = hint
        self.field = field  # the setting, column or input field at fault, when one is (for -o json and logs)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


_REF = re.compile(r"«([A-Za-z_][A-Za-z0-9_-]*)»")


def ref(field: str) -> str:
    """A reference to an input field inside an error message. Services name fields, not command-line
    flags: ``BadInput(f"{ref('until')} {day} is before {ref('from')} {start}", field="until")`` reads
    "until 2026-10-01 is before from 2026-10-10" as text (logs, ``str()``), and the CLI shows each
    reference as the option that sets it in the command that failed ("--until ... --from ...")."""
    return f"«{field}»"


def plain(text: str) -> str:
    """``text`` with its field references (``ref``) as plain field names."""
    return _REF.sub(r"\1", text)


def render_refs(text: str, flag_of: Callable[[str], str | None]) -> str:
    """``text`` with each field reference replaced by ``flag_of(field)``, or the plain name when None."""
    return _REF.sub(lambda m: flag_of(m.group(1)) or m.group(1), text)


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


class PartialFailure(BillctlError):
    """The run finished, but some items failed, were held or are not due (listed in its report)."""

    exit_code = ExitCode.PARTIAL


class DriftFound(BillctlError):
    """A check found something to report (drift between billctl and Stripe, anomalies)."""

    exit_code = ExitCode.FOUND


class Interrupted(BillctlError):
    """Stopped by SIGTERM after leaving consistent state."""

    exit_code = ExitCode.INTERRUPTED


class TenantDataError(BadInput):
    """One tenant's data (its plan, its amounts) cannot be billed: that tenant fails, the others go on."""


class NoStripeKey(ConfigError):
    """No Stripe key configured at all (as opposed to a bad one): the monthly close runs without Stripe."""


class StripeFailure(BillctlError):
    """One Stripe request failed for good (after retries): the item fails, the run goes on. The message
    is redacted: nothing key-shaped survives into it."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(redact(message))
        self.status = status
        self.code = code


_KEY_RE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]{4,}")
_SECRET_RE = re.compile(r"\bwhsec_[A-Za-z0-9*]{4,}")


def redact(text: object) -> str:
    """``text`` with every Stripe key or webhook secret (even a partly masked one) replaced."""
    return _SECRET_RE.sub("whsec_[redacted]", _KEY_RE.sub("[redacted key]", str(text)))


# --- the pure core's refusals -------------------------------------------------------------------------


class DomainError(ValueError):
    """Something the pure core refuses (bad money, period, plan, event or credit). No exit code of its
    own: the service that called the core turns it into a ``BillctlError`` naming what was at fault."""

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class MoneyError(DomainError):
    """An amount or currency billctl cannot bill exactly."""


class PeriodError(DomainError):
    """A period, date or time zone that does not exist or cannot be billed."""


class EventError(DomainError):
    """Why an event cannot be counted; the text goes to the dead-letter stream or the report."""


class CreditError(DomainError):
    """A credit note that cannot be issued; ``hint`` says what to do instead."""


class CreditsError(DomainError):
    """Prepaid credits (issue 13) the core refuses: a grant that cannot be made, a draw or a reversal
    that would break the ledger. ``field`` names the input at fault (amount, currency, kind, effective,
    expires, priority). Not to be confused with ``CreditError``, which is about credit notes."""

    def __init__(self, message: str = "", hint: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


class PlanError(DomainError):
    """A plan file or plan that cannot be used: every problem found, not just the first."""

    SHOWN = 20  # problems listed before "… and N more"

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems[: self.SHOWN]))
        self.problems = problems

    def report(self) -> str:
        """The problems as a list, the first SHOWN of them and a count of the rest."""
        lines = [f"  - {p}" for p in self.problems[: self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            lines.append(f"  … and {len(self.problems) - self.SHOWN:,} more")
        return "\n".join(lines)
