"""Compare a finalized invoice with the same period priced again today. Pure: plain data in and out.

Lines are matched by what they price (kind, segment, tier, discount, period adjusted), not by
their text, which contains the quantities that changed. The input documents are compared to say
why the amount moved (late usage, a corrected plan, a new discount, another tax rate), and a
correction is proposed; nothing here writes anything: history is corrected explicitly (invariant 5).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    description: str
    quantity: Decimal
    amount_minor: int


@dataclass(frozen=True)
class LineDiff:
    key: str
    kind: str
    status: str  # same | changed | added | removed
    then: Row | None
    now: Row | None

    @property
    def delta_minor(self) -> int:
        return (self.now.amount_minor if self.now else 0) - (self.then.amount_minor if self.then else 0)


def line_key(kind: str, detail: Mapping[str, object]) -> str:
    """What a line prices, stable when its quantities change."""
    parts = [kind]
    if detail.get("start"):
        parts.append(str(detail["start"]))
    if detail.get("model") == "graduated" and detail.get("tier") != 1:
        # one line per tier reached (tier 1 is the line that says "nothing billable" at zero usage);
        # volume keeps one line whatever the tier
        parts.append(f"tier {detail.get('tier')}")
    if kind == "discount":
        parts.append(f"discount {detail.get('discount_id')}")
    if kind == "adjustment":
        parts.append(f"for {detail.get('for_period')}")
    return " · ".join(parts)


def keyed(rows: Sequence[tuple[str, str, str, Decimal, int]]) -> list[Row]:
    """(base key, kind, description, quantity, amount) → rows whose keys are unique (#2, #3 on repeats)."""
    seen: Counter[str] = Counter()
    result = []
    for key, kind, description, quantity, amount in rows:
        seen[key] += 1
        result.append(Row(key if seen[key] == 1 else f"{key} #{seen[key]}", kind, description, quantity, amount))
    return result


def diff_lines(then: Sequence[Row], now: Sequence[Row]) -> list[LineDiff]:
    """Line by line, in the new invoice's order, with removed lines where they used to be."""
    old = {r.key: r for r in then}
    new = {r.key: r for r in now}
    result: list[LineDiff] = []
    for row in now:
        before = old.get(row.key)
        if before is None:
            result.append(LineDiff(row.key, row.kind, "added", None, row))
        elif (before.amount_minor, before.quantity, before.description) == (
            row.amount_minor,
            row.quantity,
            row.description,
        ):
            result.append(LineDiff(row.key, row.kind, "same", before, row))
        else:
            result.append(LineDiff(row.key, row.kind, "changed", before, row))
    for index, row in enumerate(then):
        if row.key not in new:
            result.insert(min(index, len(result)), LineDiff(row.key, row.kind, "removed", row, None))
    return result


def _usage_total(segments: Sequence[Mapping]) -> int:
    return sum(int(v) for seg in segments for v in seg.get("usage", {}).values())


def input_changes(then: Mapping, now: Mapping) -> list[str]:
    """Why two inputs documents differ, in words an operator can act on (empty when identical)."""
    reasons: list[str] = []
    t_segs, n_segs = then.get("segments", []), now.get("segments", [])
    t_shape = [(s["start"], s["end"], s["plan"]["code"]) for s in t_segs]
    n_shape = [(s["start"], s["end"], s["plan"]["code"]) for s in n_segs]
    if t_shape != n_shape:
        before = ", ".join(f"{s['plan']['code']} from {s['start'][:10]}" for s in t_segs) or "none"
        after = ", ".join(f"{s['plan']['code']} from {s['start'][:10]}" for s in n_segs) or "none"
        reasons.append(f"plan assignments changed: {before} → {after}")
    else:
        for a, b in zip(t_segs, n_segs, strict=True):
            if a["plan"]["version"] != b["plan"]["version"] or a["plan"]["definition"] != b["plan"]["definition"]:
                reasons.append(f"plan {a['plan']['code']} changed: v{a['plan']['version']} → v{b['plan']['version']}")
    t_units, n_units = _usage_total(t_segs), _usage_total(n_segs)
    if t_units != n_units:
        reasons.append(f"usage changed: {t_units:,} → {n_units:,} units ({n_units - t_units:+,}, late usage)")
    elif [s.get("usage") for s in t_segs] != [s.get("usage") for s in n_segs]:
        reasons.append("usage per endpoint changed")
    if then.get("discounts") != now.get("discounts"):
        reasons.append("discounts changed")
    for field, label in (("tax_rate", "tax rate"), ("currency", "currency"), ("timezone", "billing time zone")):
        if then.get(field) != now.get(field):
            reasons.append(f"{label} changed: {then.get(field)} → {now.get(field)}")
    if then.get("rounding") != now.get("rounding") or then.get("schema") != now.get("schema"):
        reasons.append("pricing rules changed (rounding rule or inputs schema)")
    return reasons


def only_usage_grew(reasons: Sequence[str]) -> bool:
    return bool(reasons) and all(r.startswith("usage changed") for r in reasons)


def propose(
    number: str, delta_subtotal_minor: int, delta_total_minor: int, reasons: Sequence[str], money: str
) -> dict[str, str]:
    """The correction to make for a difference (``money`` is the pre-tax difference, formatted)."""
    if delta_total_minor == 0 and delta_subtotal_minor == 0:
        if reasons:
            return {"action": "none", "note": "the inputs changed but the amount did not"}
        return {"action": "none", "note": "identical inputs: same lines, same fingerprint"}
    if only_usage_grew(reasons) and delta_subtotal_minor > 0:
        return {
            "action": "adjustment",
            "note": f"late usage: the next invoice carries an adjustment line of {money} before tax for this "
            "period automatically; nothing to do",
        }
    if delta_subtotal_minor > 0:
        return {
            "action": "charge",
            "note": f"undercharged by {money} before tax: void {number} and finalize the period again, "
            "or bill the difference as a separate charge",
        }
    return {
        "action": "credit",
        "note": f"overcharged by {money} before tax: issue a credit, or void {number} and finalize the period again",
    }
