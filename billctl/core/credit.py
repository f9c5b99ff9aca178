"""Credit note maths: what is left to credit on an invoice and what one credit note takes. Pure.

Amounts are integer minor units of the invoice's currency, each a multiple of the currency's
billing unit (``Invoice.step``: 10 for KWD, whose thousandths Stripe charges only in tens; 100 for
ISK, stored with two decimals but charged in whole krónur; 1 for USD or JPY), as the invoice's own
lines are. An invoice has a subtotal (its lines but tax), a tax and a total; credit notes take from
it until nothing is left, never more:

- **net** (charges before tax) credited never exceeds the subtotal, nor, on one line, the line;
- **tax** credited is always the invoice's tax in proportion to what has been credited so far in
  total, rounded once, half-up, to the billing unit (``tax_share``), so crediting in pieces
  credits, to the unit, the same tax as crediting at once; crediting everything credits exactly
  the invoice's tax;
- credited + left == total, always.

A credit note takes either what is left of the whole invoice, some lines (each what is left of
it, plus their share of tax), or an amount (tax included, split into net and tax the same way).
Only lines with a positive amount can be credited by line (a discount or the tax line cannot);
an invoice whose discounts make its lines add up to more than its subtotal can have at most its
subtotal credited, whichever way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from billctl.errors import CreditError

MODES = ("rest", "lines", "amount")


@dataclass(frozen=True)
class InvoiceLine:
    position: int
    kind: str  # base usage minimum discount adjustment tax
    description: str
    amount: int


@dataclass(frozen=True)
class Invoice:
    number: str
    subtotal: int
    tax: int
    lines: tuple[InvoiceLine, ...] = ()
    step: int = 1  # the currency's billing unit in minor units: every amount credited is a multiple

    @property
    def total(self) -> int:
        return self.subtotal + self.tax

    @property
    def unit(self) -> int:
        """What credits are rounded to: ``step``, or the minor unit for an invoice whose own amounts
        are not all multiples of it (finalized before billctl knew Stripe's rule; Stripe cannot
        take it anyway), so that rounding never credits more tax than it bills."""
        amounts = (self.subtotal, self.tax, *(x.amount for x in self.lines))
        return self.step if all(a % self.step == 0 for a in amounts) else 1

    def line(self, position: int) -> InvoiceLine | None:
        return next((x for x in self.lines if x.position == position), None)


@dataclass(frozen=True)
class NoteLine:
    kind: str  # line (an invoice line) | amount (no particular line) | tax
    position: int | None  # the invoice line credited (line, tax); None for amount
    description: str
    amount: int


@dataclass(frozen=True)
class Note:
    """One credit note's lines (what it takes)."""

    lines: tuple[NoteLine, ...]

    @property
    def net(self) -> int:
        return sum(x.amount for x in self.lines if x.kind != "tax")

    @property
    def tax(self) -> int:
        return sum(x.amount for x in self.lines if x.kind == "tax")

    @property
    def total(self) -> int:
        return self.net + self.tax


@dataclass(frozen=True)
class Credited:
    """What earlier credit notes took from an invoice."""

    net: int = 0
    tax: int = 0
    by_line: Mapping[int, int] = field(default_factory=dict)  # invoice line position -> net credited

    @property
    def total(self) -> int:
        return self.net + self.tax

    @classmethod
    def of(cls, notes: Iterable[Note]) -> Credited:
        credited = cls()
        for note in notes:
            credited = credited.plus(note)
        return credited

    def plus(self, note: Note) -> Credited:
        by_line = dict(self.by_line)
        for x in note.lines:
            if x.kind == "line" and x.position is not None:
                by_line[x.position] = by_line.get(x.position, 0) + x.amount
        return Credited(self.net + note.net, self.tax + note.tax, by_line)


@dataclass(frozen=True)
class Left:
    net: int
    tax: int
    by_line: Mapping[int, int]  # positive lines only: what is left of each

    @property
    def total(self) -> int:
        return self.net + self.tax


def _round_half_up(numerator: int, denominator: int, step: int = 1) -> int:
    """numerator / denominator rounded half-up to a multiple of ``step`` (all >= 0, denominator and
    step > 0)."""
    return step * ((2 * numerator + denominator * step) // (2 * denominator * step))


def tax_share(invoice: Invoice, net: int) -> int:
    """The invoice's tax in proportion to ``net`` of its subtotal, rounded once, half-up, to the
    billing unit."""
    if invoice.subtotal <= 0 or invoice.tax <= 0:
        return 0
    return _round_half_up(invoice.tax * min(max(net, 0), invoice.subtotal), invoice.subtotal, invoice.unit)


def left(invoice: Invoice, credited: Credited) -> Left:
    by_line = {
        x.position: x.amount - credited.by_line.get(x.position, 0)
        for x in invoice.lines
        if x.kind != "tax" and x.amount > 0
    }
    return Left(max(invoice.subtotal, 0) - credited.net, max(invoice.tax, 0) - credited.tax, by_line)


def plan(
    invoice: Invoice,
    credited: Credited,
    *,
    lines: Sequence[int] = (),
    amount: int | None = None,
    fmt: Callable[[int], str] = str,
) -> Note:
    """The credit note for: what is left (no ``lines``, no ``amount``), some ``lines`` (positions),
    or ``amount`` (minor units, tax included). Raises CreditError, changing nothing.
    ``fmt`` renders minor units for messages (e.g. ``12.34``)."""
    show = fmt
    remaining = left(invoice, credited)
    if lines and amount is not None:
        raise CreditError("give either lines or an amount, not both", "one credit note per way of crediting")
    if remaining.total <= 0:
        raise CreditError(
            f"nothing is left to credit on {invoice.number}: {show(credited.total)} of {show(invoice.total)} "
            "is credited already",
            "see its credit notes with `billctl invoices show " + invoice.number + "`",
        )
    if lines:
        return _lines(invoice, credited, remaining, lines, show)
    if amount is not None:
        return _amount(invoice, credited, remaining, amount, show)
    out = []
    if remaining.net:
        out.append(NoteLine("amount", None, f"What is left of {invoice.number}", remaining.net))
    if remaining.tax:
        out.append(NoteLine("tax", _tax_position(invoice), "Tax", remaining.tax))
    return Note(tuple(out))


def _tax_position(invoice: Invoice) -> int | None:
    return next((x.position for x in invoice.lines if x.kind == "tax"), None)


def _lines(
    invoice: Invoice, credited: Credited, remaining: Left, positions: Sequence[int], show: Callable[[int], str]
) -> Note:
    seen: set[int] = set()
    out: list[NoteLine] = []
    where = f"see them with `billctl invoices show {invoice.number}`"
    for position in positions:
        if position in seen:
            raise CreditError(f"line {position} is given twice", "give each --line once")
        seen.add(position)
        line = invoice.line(position)
        if line is None:
            numbers = sorted(x.position for x in invoice.lines)
            have = f"lines {numbers[0]}–{numbers[-1]}" if numbers else "no lines"
            raise CreditError(f"{invoice.number} has no line {position} (it has {have})", where)
        if line.kind == "tax":
            raise CreditError(
                f"line {position} is the tax line: tax is credited with the lines it taxes",
                "credit the taxed lines (their share of tax comes with them) or an --amount",
            )
        if line.amount <= 0:
            raise CreditError(
                f"line {position} ({line.kind}, {show(line.amount)}) has nothing to credit: only lines with a "
                "positive amount can be credited by line",
                "credit the lines it applies to, or an --amount",
            )
        rest = remaining.by_line[position]
        if rest <= 0:
            raise CreditError(f"line {position} of {invoice.number} is credited in full already", where)
        out.append(NoteLine("line", position, line.description, rest))
    net = sum(x.amount for x in out)
    if net > remaining.net:
        raise CreditError(
            f"lines {', '.join(str(p) for p in positions)} come to {show(net)} but only {show(remaining.net)} of "
            f"{invoice.number}'s charges before tax is left to credit (its discounts, or earlier credit notes, "
            "take the rest)",
            f"credit an --amount of at most {show(remaining.total)} (tax included) instead",
        )
    tax = max(0, tax_share(invoice, credited.net + net) - credited.tax)
    if tax:
        out.append(NoteLine("tax", _tax_position(invoice), "Tax on the credited lines", tax))
    return Note(tuple(out))


def _amount(invoice: Invoice, credited: Credited, remaining: Left, amount: int, show: Callable[[int], str]) -> Note:
    if amount <= 0:
        raise CreditError(
            f"--amount must be more than 0 (got {show(amount)})", "give the amount to credit, tax included"
        )
    if amount % invoice.unit:
        raise CreditError(
            f"--amount {show(amount)} is finer than the currency is charged",
            f"give a multiple of {show(invoice.unit)}",
        )
    if amount > remaining.total:
        raise CreditError(
            f"--amount {show(amount)} is more than the {show(remaining.total)} left to credit on {invoice.number}",
            f"credit at most {show(remaining.total)}, or leave out --amount to credit all that is left",
        )
    # tax: the invoice's tax in proportion to the total credited so far (this note included)
    target = (
        _round_half_up(invoice.tax * (credited.total + amount), invoice.total, invoice.unit)
        if invoice.total > 0 and invoice.tax > 0
        else 0
    )
    tax = min(max(target - credited.tax, 0), remaining.tax, amount)
    net = amount - tax
    if net > remaining.net:  # keep both parts within what is left of them
        net = remaining.net
        tax = amount - net
    out = []
    if net:
        out.append(NoteLine("amount", None, f"Credit on {invoice.number}", net))
    if tax:
        out.append(NoteLine("tax", _tax_position(invoice), "Tax on the credited amount", tax))
    return Note(tuple(out))
