# Long because: one model (grants, ledger, draw-down, expiry, reversal, burn-down) whose rules refer to each other.
"""Prepaid credits, pure: grants, the ledger, the draw-down at finalize, expiry, burn-down, reversal.

Money is ``Decimal`` in the currency's major unit, every amount a multiple of the currency's billing
unit (``money.fits_minor_unit``); the services store it as integer minor units (``money.to_minor``).

**Grants and the ledger** (DESIGN.md invariant 14). A grant gives a tenant an amount of credit in its
currency, usable over the half-open interval ``[effective_at, expires_at)`` (no ``expires_at``: for
ever). Grants are never edited: everything that happens to one is an immutable ledger entry, signed:

=========  ======  ==========================================================================
kind       sign    written when
=========  ======  ==========================================================================
grant      ``+``   the grant is made (its whole amount)
draw       ``-``   an invoice uses it (one entry per invoice and grant, at finalize)
expiry     ``-``   its remainder is written off at a period close after it expired
reversal   ``+``   an invoice that drew on it is voided or credited (back to the same grant)
=========  ======  ==========================================================================

A grant's remainder is the sum of its entries, the balance the sum of all entries; neither is ever
below zero, and a grant never gives more than its amount (``check_ledger``).

**Which grants an invoice may use.** The invoice of a period ``[start, end)`` uses the grants active
at the period's last instant: ``effective_at < end <= expires_at``. A grant that expires on the 1st of
the next month (``expires_at == end``) still covers the month; one that expires mid-period does not
(it is written off at the close); one effective after the period's end waits for the next invoice.

**The order** in which they are drawn (``draw_order``):

1. promotional grants before purchased ones (promotional credits apply before tax, purchased ones
   after it, see below; so free credit is always used up before paid credit);
2. within a kind, the grant that expires first (grants that never expire come last);
3. then the lower ``priority`` number (0 first, 100 last, default 50, as Stripe's credit grants);
4. then the older grant (``effective_at``), then the lower grant id (a stable tie-break).

**Tax.** *Promotional* credits are a discount: they reduce the taxable amount, and tax is computed
on what is left, rounded once, half-up (invariant 3). *Purchased* credits were paid for (tax is due
on the usage they pay for): they settle the amount due after tax, like a payment. So, for charges
``S`` (the invoice's subtotal before tax) and a tax rate ``r`` %::

    promotional P = min(promotional remainders, max(S, 0))
    taxable       = S - P
    tax           = round(taxable x r / 100)
    purchased   U = min(purchased remainders, max(taxable + tax, 0))
    total         = taxable + tax - U          == S + tax - (P + U)   (charges minus credits)

Each grant used is its own invoice line (``credit_lines``): promotional lines before the tax line,
purchased lines after it, so the invoice still explains itself line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from billctl.core.bounds import MAX_AMOUNT_MINOR, minor_limit, quote
from billctl.core.money import billing_rule, exponent, fits_minor_unit, format_money, quantize
from billctl.errors import CreditsError, MoneyError

ZERO = Decimal(0)
PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 0, 100, 50


class CreditKind(StrEnum):
    PROMOTIONAL = "promotional"  # given for free: a discount, before tax
    PURCHASED = "purchased"  # paid for: a payment, after tax


class EntryKind(StrEnum):
    GRANT = "grant"
    DRAW = "draw"
    EXPIRY = "expiry"
    REVERSAL = "reversal"


SIGN = {EntryKind.GRANT: 1, EntryKind.DRAW: -1, EntryKind.EXPIRY: -1, EntryKind.REVERSAL: 1}


@dataclass(frozen=True)
class Grant:
    id: int
    currency: str
    amount: Decimal  # > 0, a multiple of the currency's billing unit
    kind: CreditKind
    effective_at: datetime
    expires_at: datetime | None = None
    priority: int = PRIORITY_DEFAULT
    reason: str = ""

    def active_at(self, instant: datetime) -> bool:
        """Usable at ``instant``: inside ``[effective_at, expires_at)``."""
        return self.effective_at <= instant and (self.expires_at is None or instant < self.expires_at)

    def covers(self, period_end: datetime) -> bool:
        """Usable by the invoice of a period ending at ``period_end``: active at its last instant."""
        return self.effective_at < period_end and (self.expires_at is None or period_end <= self.expires_at)

    def expired_by(self, instant: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= instant


@dataclass(frozen=True)
class Entry:
    """One immutable ledger entry. ``amount`` is signed (see the module's table)."""

    grant_id: int
    kind: EntryKind
    amount: Decimal
    at: datetime
    invoice_id: int | None = None  # draws and reversals: the invoice drawn on
    source: str = ""  # what wrote it, e.g. "void", "credit_note:CN-…", "close:2026-10"


# ------------------------------------------------------------------------------------------ grants


def validate_grant(
    *,
    amount: Decimal,
    currency: str,
    tenant_currency: str,
    kind: str,
    effective_at: datetime,
    expires_at: datetime | None,
    priority: int,
) -> CreditKind:
    """Refuse a grant that cannot be made, naming the field at fault; return its kind."""
    if currency.upper() != tenant_currency.upper():
        raise CreditsError(
            f"currency {currency.upper()} is not the tenant's: it is billed in {tenant_currency.upper()}",
            field="currency",
            hint=f"grant credits in {tenant_currency.upper()}",
        )
    if kind not in tuple(CreditKind):
        raise CreditsError(f"kind {quote(kind)} must be promotional or purchased", field="kind")
    if not amount.is_finite() or amount <= 0:
        raise CreditsError(f"amount {amount} must be greater than 0", field="amount")
    limit = minor_limit(MAX_AMOUNT_MINOR, exponent(currency))
    if amount > limit:
        raise CreditsError(f"amount {amount} is above the limit of {limit:,f} {currency.upper()}", field="amount")
    if not fits_minor_unit(amount, currency):
        raise CreditsError(f"amount {amount} is finer than {billing_rule(currency)}", field="amount")
    if expires_at is not None and expires_at <= effective_at:
        raise CreditsError(
            f"expires: {expires_at:%Y-%m-%d %H:%M}Z is not after the effective date {effective_at:%Y-%m-%d %H:%M}Z",
            field="expires",
        )
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise CreditsError(f"priority {priority} must be between {PRIORITY_MIN} and {PRIORITY_MAX}", field="priority")
    return CreditKind(kind)


def draw_order(grant: Grant) -> tuple:
    """The sort key of the documented draw-down order (module docstring)."""
    return (
        grant.kind != CreditKind.PROMOTIONAL,
        grant.expires_at is None,
        grant.expires_at.timestamp() if grant.expires_at else 0.0,
        grant.priority,
        grant.effective_at,
        grant.id,
    )


# ------------------------------------------------------------------------------------------ ledger


def grant_entry(grant: Grant, at: datetime | None = None) -> Entry:
    return Entry(grant.id, EntryKind.GRANT, grant.amount, at or grant.effective_at)


def remainders(entries: Iterable[Entry]) -> dict[int, Decimal]:
    """What is left of each grant: the sum of its entries."""
    left: dict[int, Decimal] = {}
    for entry in entries:
        left[entry.grant_id] = left.get(entry.grant_id, ZERO) + entry.amount
    return left


def balance(entries: Iterable[Entry]) -> Decimal:
    """The ledger balance: the sum of every entry (what is left of every grant, expired or not)."""
    return sum((e.amount for e in entries), ZERO)


def check_ledger(grants: Iterable[Grant], entries: Sequence[Entry]) -> list[str]:
    """What is wrong with a ledger (empty: nothing): entries with the wrong sign, a grant recorded
    other than once at its amount, a remainder below zero or above the grant, a draw on an invoice
    reversed more than it drew."""
    problems: list[str] = []
    by_id = {g.id: g for g in grants}
    for entry in entries:
        if entry.amount * SIGN[entry.kind] <= 0:
            problems.append(f"{entry.kind} entry of grant {entry.grant_id} has amount {entry.amount}")
        if entry.grant_id not in by_id:
            problems.append(f"entry for unknown grant {entry.grant_id}")
    for grant in by_id.values():
        made = [e for e in entries if e.grant_id == grant.id and e.kind == EntryKind.GRANT]
        if [e.amount for e in made] != [grant.amount]:
            problems.append(f"grant {grant.id} is recorded {len(made)} time(s), not once at {grant.amount}")
    running: dict[int, Decimal] = {}
    for entry in entries:  # in the order written: no prefix of the ledger goes below zero either
        running[entry.grant_id] = running.get(entry.grant_id, ZERO) + entry.amount
        known = by_id.get(entry.grant_id)
        if running[entry.grant_id] < 0 or (known is not None and running[entry.grant_id] > known.amount):
            problems.append(f"grant {entry.grant_id} has {running[entry.grant_id]} left after a {entry.kind}")
    drawn: dict[tuple[int | None, int], Decimal] = {}
    for entry in entries:
        if entry.kind in (EntryKind.DRAW, EntryKind.REVERSAL):
            key = (entry.invoice_id, entry.grant_id)
            drawn[key] = drawn.get(key, ZERO) - entry.amount
            if drawn[key] < 0:
                problems.append(f"invoice {entry.invoice_id} gave back more of grant {entry.grant_id} than it drew")
    return problems


# ------------------------------------------------------------------------------------------ draw-down


@dataclass(frozen=True)
class Draw:
    grant_id: int
    kind: CreditKind
    amount: Decimal  # > 0: what this grant covers on the invoice
    remaining_after: Decimal  # what is left of the grant afterwards

    @property
    def before_tax(self) -> bool:
        return self.kind == CreditKind.PROMOTIONAL


@dataclass(frozen=True)
class Application:
    """What credits do to one invoice (module docstring: the formulas)."""

    currency: str
    charges: Decimal  # the subtotal before tax and before credits
    tax_rate: Decimal  # percent
    promotional: Decimal  # promotional credits applied (before tax)
    taxable: Decimal  # charges - promotional
    tax: Decimal  # on the taxable amount, rounded once
    purchased: Decimal  # purchased credits applied (after tax)
    total: Decimal  # what is left to pay: taxable + tax - purchased
    draws: tuple[Draw, ...] = ()

    @property
    def credits(self) -> Decimal:
        return self.promotional + self.purchased

    @property
    def gross(self) -> Decimal:
        """Charges plus the tax due on them after promotional credits: total == gross - credits."""
        return self.charges + self.tax


def tax_on(amount: Decimal, tax_rate: Decimal, currency: str) -> Decimal:
    """Tax on a subtotal, rounded once, half-up, as rating does (no tax line at a rate of 0)."""
    return quantize(amount * tax_rate / 100, currency) if tax_rate > 0 else quantize(ZERO, currency)


def usable(grants: Iterable[Grant], entries: Iterable[Entry], period_end: datetime) -> list[tuple[Grant, Decimal]]:
    """The grants the invoice of a period ending at ``period_end`` may draw on, with what is left of
    each, in the order they are drawn."""
    left = remainders(entries)
    found = [(g, left.get(g.id, ZERO)) for g in grants if g.covers(period_end)]
    return sorted(((g, r) for g, r in found if r > 0), key=lambda pair: draw_order(pair[0]))


def apply_credits(
    *,
    currency: str,
    charges: Decimal,
    tax_rate: Decimal,
    grants: Iterable[Grant],
    entries: Iterable[Entry],
    period_end: datetime,
) -> Application:
    """Draw an invoice's credits: ``charges`` is its subtotal before tax (rounded lines, discounts
    and adjustments included), ``tax_rate`` a percent. Grants of another currency are refused."""
    grants = list(grants)
    for grant in grants:
        if grant.currency.upper() != currency.upper():
            raise CreditsError(f"grant {grant.id} is in {grant.currency}, the invoice in {currency}", field="currency")
    if not fits_minor_unit(charges, currency):
        raise MoneyError(f"charges {charges} are finer than {billing_rule(currency)}")
    draws: list[Draw] = []
    room = {CreditKind.PROMOTIONAL: max(charges, ZERO), CreditKind.PURCHASED: ZERO}
    taxable = tax = ZERO
    promotional = purchased = ZERO
    candidates = usable(grants, entries, period_end)
    for kind in (CreditKind.PROMOTIONAL, CreditKind.PURCHASED):
        if kind == CreditKind.PURCHASED:
            taxable = charges - promotional
            tax = tax_on(taxable, tax_rate, currency)
            room[kind] = max(taxable + tax, ZERO)
        for grant, left in candidates:
            if grant.kind != kind or room[kind] <= 0:
                continue
            take = min(left, room[kind])
            room[kind] -= take
            draws.append(Draw(grant.id, kind, take, left - take))
        taken = sum((d.amount for d in draws if d.kind == kind), ZERO)
        if kind == CreditKind.PROMOTIONAL:
            promotional = taken
        else:
            purchased = taken
    return Application(
        currency=currency,
        charges=charges,
        tax_rate=tax_rate,
        promotional=promotional,
        taxable=taxable,
        tax=tax,
        purchased=purchased,
        total=taxable + tax - purchased,
        draws=tuple(draws),
    )


@dataclass(frozen=True)
class CreditLine:
    """One invoice line for one grant used (``amount`` negative). ``before_tax``: promotional, shown
    before the tax line (it reduced the taxable amount); otherwise after it."""

    grant_id: int
    kind: CreditKind
    description: str
    amount: Decimal
    before_tax: bool
    detail: Mapping[str, object] = field(default_factory=dict)


def credit_lines(application: Application, grants: Mapping[int, Grant]) -> list[CreditLine]:
    """The invoice lines of an application, in the order drawn."""
    lines = []
    for draw in application.draws:
        grant = grants[draw.grant_id]
        label = "Promotional credit" if draw.kind == CreditKind.PROMOTIONAL else "Prepaid credit"
        reason = f": {grant.reason}" if grant.reason else ""
        expiry = f", expires {grant.expires_at:%Y-%m-%d}" if grant.expires_at else ""
        lines.append(
            CreditLine(
                grant_id=grant.id,
                kind=draw.kind,
                description=f"{label}{reason} (grant {grant.id}{expiry})",
                amount=-draw.amount,
                before_tax=draw.before_tax,
                detail={
                    "grant_id": grant.id,
                    "credit_kind": str(draw.kind),
                    "applies": "before tax" if draw.before_tax else "after tax",
                    "grant_amount": str(grant.amount),
                    "remaining_before": str(draw.remaining_after + draw.amount),
                    "remaining_after": str(draw.remaining_after),
                    "priority": grant.priority,
                    "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
                },
            )
        )
    return lines


# ------------------------------------------------------------------------------------------ expiry


@dataclass(frozen=True)
class Expiry:
    grant_id: int
    amount: Decimal  # > 0: the remainder written off


def expiries(
    grants: Iterable[Grant], entries: Iterable[Entry], at: datetime, *, keep: Iterable[int] = ()
) -> list[Expiry]:
    """The remainders to write off at ``at`` (a period close): grants expired by then with something
    left, but those in ``keep`` (grants an invoice not finalized yet may still draw on)."""
    left = remainders(entries)
    held = set(keep)
    due = [g for g in grants if g.expired_by(at) and g.id not in held and left.get(g.id, ZERO) > 0]
    return [Expiry(g.id, left[g.id]) for g in sorted(due, key=lambda g: (g.expires_at, g.id))]


# ------------------------------------------------------------------------------------------ reversal


@dataclass(frozen=True)
class Reversal:
    grant_id: int
    amount: Decimal  # > 0: given back to the grant


def outstanding(entries: Iterable[Entry], invoice_id: int) -> dict[int, Decimal]:
    """What one invoice drew from each grant and has not given back yet, in the order drawn."""
    out: dict[int, Decimal] = {}
    for entry in entries:
        if entry.invoice_id == invoice_id and entry.kind in (EntryKind.DRAW, EntryKind.REVERSAL):
            out[entry.grant_id] = out.get(entry.grant_id, ZERO) - entry.amount
    return {grant_id: amount for grant_id, amount in out.items() if amount > 0}


def reversals(entries: Iterable[Entry], invoice_id: int, amount: Decimal | None = None) -> list[Reversal]:
    """What to give back when the invoice is voided (``amount`` None: everything it drew and has not
    given back) or credited by ``amount`` of credits: taken from the grants in the reverse of the
    order they were drawn (purchased credit first, the last drawn first), never more than was drawn,
    so a second void or credit of the same invoice can never give anything back twice."""
    left = outstanding(entries, invoice_id)
    if amount is not None and amount < 0:
        raise CreditsError(f"amount {amount} to give back must not be negative", field="amount")
    out: list[Reversal] = []
    room = sum(left.values(), ZERO) if amount is None else amount
    for grant_id in reversed(list(left)):
        if room <= 0:
            break
        take = min(left[grant_id], room)
        room -= take
        out.append(Reversal(grant_id, take))
    return out


# ------------------------------------------------------------------------------------------ burn-down


@dataclass(frozen=True)
class BurnDown:
    currency: str
    balance: Decimal  # the ledger balance (every entry)
    available: Decimal  # in grants active now
    usable_at_period_end: Decimal  # in grants the current period's invoice may draw on
    consumed: Decimal  # drawn in the window, net of reversals
    window_days: int
    per_day: Decimal  # consumed / window_days (or the open period's rate, when higher)
    run_out_on: date | None  # None: nothing is being consumed
    period_end: datetime
    threshold: Decimal | None
    below_threshold: bool
    runs_out_before_period_end: bool

    @property
    def alert(self) -> bool:
        return self.below_threshold or self.runs_out_before_period_end

    def reasons(self) -> list[str]:
        out = []
        if self.below_threshold and self.threshold is not None:
            out.append(f"below {format_money(self.threshold, self.currency)}")
        if self.runs_out_before_period_end:
            out.append(f"runs out before the period ends ({self.period_end:%Y-%m-%d})")
        return out


def burn_down(
    grants: Sequence[Grant],
    entries: Sequence[Entry],
    *,
    currency: str,
    now: datetime,
    period_start: datetime,
    period_end: datetime,
    window_days: int,
    threshold: Decimal | None = None,
    accrued: Decimal | None = None,
) -> BurnDown:
    """Balance, recent burn rate and projected run-out date of one tenant's credits.

    The rate is what invoices drew in the last ``window_days`` (net of reversals) per day; when
    ``accrued`` (the open period's charges so far, from a preview) is given and burns faster, its
    rate is used. The projection starts from what the current period's invoice may draw on (grants
    expiring before the period ends do not count), so a tenant whose credits expire mid-period, or
    whose burn empties them before the period ends, is flagged. Tenants with no credit ever and
    nothing consumed are not alerted about."""
    if window_days < 1:
        raise CreditsError("the burn-rate window must be at least one day", field="window_days")
    left = remainders(entries)
    available = sum((left.get(g.id, ZERO) for g in grants if g.active_at(now)), ZERO)
    at_end = sum((left.get(g.id, ZERO) for g in grants if g.covers(period_end)), ZERO)
    since = now - timedelta(days=window_days)
    consumed = -sum(
        (e.amount for e in entries if e.kind in (EntryKind.DRAW, EntryKind.REVERSAL) and since < e.at <= now), ZERO
    )
    per_day = max(consumed, ZERO) / window_days
    elapsed = Decimal((now - period_start).total_seconds()) / 86400
    if accrued is not None and accrued > 0 and elapsed > 0:
        per_day = max(per_day, accrued / elapsed)
    run_out: date | None = None
    if per_day > 0:
        days = at_end / per_day
        run_out = (now + timedelta(days=float(min(days, Decimal(36500))))).date()
    runs_out = per_day > 0 and at_end < per_day * Decimal((period_end - now).total_seconds()) / 86400
    below = threshold is not None and available < threshold
    return BurnDown(
        currency=currency,
        balance=balance(entries),
        available=available,
        usable_at_period_end=at_end,
        consumed=consumed,
        window_days=window_days,
        per_day=per_day,
        run_out_on=run_out,
        period_end=period_end,
        threshold=threshold,
        below_threshold=below,
        runs_out_before_period_end=runs_out,
    )
