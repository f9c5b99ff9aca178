"""A subset of Stripe's Search Query Language.

Supported: clauses ``field:'value'`` (exact, case-insensitive), ``field~'sub'`` (substring, at least 3
characters), ``field>N`` / ``<`` / ``>=`` / ``<=`` on numeric fields, ``metadata['key']:'value'``,
``field:null`` (absent), a leading ``-`` to negate, joined by ``AND`` or by ``OR`` (not both, as Stripe).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .validation import ParamError

_CLAUSE_RE = re.compile(
    r"""\s*(?P<neg>-)?
        (?P<field>metadata\[\s*(?:'(?P<mk1>[^']*)'|"(?P<mk2>[^"]*)")\s*\]|[a-z_][a-z0-9_.]*)
        \s*(?P<op>>=|<=|:|~|>|<)\s*
        (?:'(?P<sq>(?:[^'\\]|\\.)*)'|"(?P<dq>(?:[^"\\]|\\.)*)"|(?P<bare>-?\d+(?:\.\d+)?|null))
        \s*""",
    re.VERBOSE,
)
_JOIN_RE = re.compile(r"\s*(AND|OR)\s+|\s+(AND|OR)\s*")


@dataclass(frozen=True)
class Clause:
    field: str  # "metadata" for metadata clauses
    metadata_key: str | None
    op: str
    value: str | float | None
    negate: bool


def parse_query(query: str, allowed_fields: set[str], resource: str) -> tuple[str, list[Clause]]:
    """Parse ``query``; return (joiner "AND"/"OR", clauses). Raises ParamError like Stripe."""
    clauses: list[Clause] = []
    joiners: set[str] = set()
    pos = 0
    text = query.strip()
    if not text:
        raise ParamError("Invalid query: the query is empty.", param="query")
    while True:
        match = _CLAUSE_RE.match(text, pos)
        if not match:
            raise ParamError(
                f"Invalid query: could not parse the query at position {pos}: {text[pos:]!r}. "
                "See https://stripe.com/docs/search#search-query-language.",
                param="query",
            )
        field = match.group("field")
        key = None
        if field.startswith("metadata["):
            key = match.group("mk1") if match.group("mk1") is not None else match.group("mk2")
            field = "metadata"
        if field not in allowed_fields:
            raise ParamError(
                f"Field `{field}` is an unsupported search field for resource `{resource}`. "
                f"See https://stripe.com/docs/search#query-fields-for-{resource} for a list "
                "of supported fields.",
                param="query",
            )
        op = match.group("op")
        raw: str | float | None
        if match.group("sq") is not None or match.group("dq") is not None:
            raw = match.group("sq") if match.group("sq") is not None else match.group("dq")
            raw = re.sub(r"\\(.)", r"\1", raw)
        elif match.group("bare") == "null":
            raw = None
        else:
            raw = float(match.group("bare"))
        if op == "~" and (not isinstance(raw, str) or len(raw) < 3):
            raise ParamError(
                "Invalid query: substring matching (~) needs a quoted value of at least 3 characters.", param="query"
            )
        if op in (">", "<", ">=", "<=") and not isinstance(raw, float):
            raise ParamError(f"Invalid query: `{op}` needs a numeric value.", param="query")
        clauses.append(Clause(field, key, op, raw, bool(match.group("neg"))))
        pos = match.end()
        if pos >= len(text):
            break
        join = _JOIN_RE.match(text, pos)
        if not join:
            raise ParamError(f"Invalid query: expected AND or OR at position {pos}: {text[pos:]!r}.", param="query")
        joiners.add(join.group(1) or join.group(2))
        pos = join.end()
    if len(joiners) > 1:
        raise ParamError("Invalid query: a query can't combine AND and OR.", param="query")
    if len(clauses) > 10:
        raise ParamError("Invalid query: a query can have at most 10 clauses.", param="query")
    return (joiners.pop() if joiners else "AND"), clauses


def _field_value(obj: dict[str, Any], clause: Clause) -> Any:
    if clause.field == "metadata":
        return (obj.get("metadata") or {}).get(clause.metadata_key or "")
    value: Any = obj
    for part in clause.field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict) and "id" in value:
        value = value["id"]
    return value


def _clause_matches(obj: dict[str, Any], clause: Clause) -> bool:
    actual = _field_value(obj, clause)
    wanted = clause.value
    if wanted is None:
        result = actual is None
    elif clause.op == ":":
        if isinstance(wanted, float):
            result = isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual == wanted
        else:
            result = actual is not None and str(actual).lower() == wanted.lower()
    elif clause.op == "~":
        result = actual is not None and str(wanted).lower() in str(actual).lower()
    else:
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            result = False
        else:
            compare: dict[str, Callable[[float, float], bool]] = {
                ">": lambda a, b: a > b,
                "<": lambda a, b: a < b,
                ">=": lambda a, b: a >= b,
                "<=": lambda a, b: a <= b,
            }
            result = compare[clause.op](actual, float(wanted))  # type: ignore[arg-type]
    return not result if clause.negate else result


def matcher(query: str, allowed_fields: set[str], resource: str) -> Callable[[dict[str, Any]], bool]:
    joiner, clauses = parse_query(query, allowed_fields, resource)
    if joiner == "OR":
        return lambda obj: any(_clause_matches(obj, c) for c in clauses)
    return lambda obj: all(_clause_matches(obj, c) for c in clauses)
