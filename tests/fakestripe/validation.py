"""Form decoding and parameter validation against the stripe SDK's own TypedDicts.

Stripe's v1 API takes ``application/x-www-form-urlencoded`` bodies whose keys encode nesting
(``metadata[k]=v``, ``lines[0][amount]=5``, ``expand[]=x``). :func:`decode_form` turns such pairs into
nested dicts (bracket segments, digits included, become dict keys; ``[]`` appends to a list).
:func:`validate` then walks a TypedDict from ``stripe.params`` (the definitions the SDK ships) and
returns the parameters coerced to Python values (``int``, ``bool``, ``Decimal``, lists), or raises
:class:`ParamError` carrying the error Stripe would send: ``parameter_unknown``,
``parameter_missing``, ``parameter_invalid_integer``, an enum value that is not allowed, ...
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import typing_extensions

__all__ = ["ParamError", "decode_form", "params_class", "validate"]

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")
_INT_RE = re.compile(r"^[+-]?\d+$")

# Keys of stripe's RequestOptions: the *Params TypedDicts used by the services inherit them, but they
# are client options (api key, idempotency key, ...), never sent as request parameters.
_REQUEST_OPTION_KEYS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "max_network_retries",
        "idempotency_key",
        "content_type",
        "headers",
    }
)

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


class ParamError(Exception):
    """A request error in Stripe's format (``{"error": {...}}``) with its HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type: str = "invalid_request_error",
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type, "message": message}
        if code is not None:
            self.error["code"] = code
        if param is not None:
            self.error["param"] = param
        self.error.update(extra)


# --------------------------------------------------------------------------------------------- forms
def decode_form(raw: str | bytes) -> dict[str, Any]:
    """Decode a form/query string into nested dicts. ``a[b][0]=x`` -> ``{"a": {"b": {"0": "x"}}}``."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY_RE.match(key)
        if not match:
            raise ParamError(f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
        _assign(root, path, value, key)
    return root


def _assign(node: dict[str, Any], path: list[str], value: str, full_key: str) -> None:
    head, rest = path[0], path[1:]
    existing = node.get(head)
    if not rest:
        if isinstance(existing, (dict, list)):
            raise ParamError(f"Invalid value for {full_key}: the parameter is also given as an object", param=full_key)
        node[head] = value
        return
    if rest[0] == "":  # a[]=x, a[][k]=v (rack semantics: a new element when k is already set)
        if existing is None:
            existing = node[head] = []
        if not isinstance(existing, list):
            raise ParamError(f"Invalid array: {full_key}", param=full_key)
        if len(rest) == 1:
            existing.append(value)
            return
        if not existing or not isinstance(existing[-1], dict) or _path_present(existing[-1], rest[1:]):
            existing.append({})
        _assign(existing[-1], rest[1:], value, full_key)
        return
    if existing is None:
        existing = node[head] = {}
    if not isinstance(existing, dict):
        raise ParamError(
            f"Invalid value for {full_key}: the parameter is also given as a "
            f"{'string' if isinstance(existing, str) else 'list'}",
            param=full_key,
        )
    _assign(existing, rest, value, full_key)


def _path_present(node: Any, path: list[str]) -> bool:
    for segment in path:
        if not isinstance(node, dict) or segment not in node:
            return False
        node = node[segment]
    return True


# ---------------------------------------------------------------------------------------- schemas
def params_class(name: str) -> type:
    """The TypedDict ``stripe.params.<name>`` (e.g. ``CustomerCreateParams``)."""
    import stripe.params

    return getattr(stripe.params, name)


@cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """(name -> resolved annotation, required names) for a TypedDict, request options dropped."""
    hints: dict[str, Any] = {}
    annotations = getattr(cls, "__annotations__", {})
    top_level = cls.__name__.endswith("Params")
    for name, annotation in annotations.items():
        if top_level and name in _REQUEST_OPTION_KEYS:
            continue
        holder = type("_Holder", (), {"__annotations__": {name: annotation}, "__module__": cls.__module__})
        try:
            hints[name] = typing.get_type_hints(holder, include_extras=True)[name]
        except Exception:  # noqa: BLE001 - an unresolvable annotation accepts anything
            hints[name] = Any
    required = set(getattr(cls, "__required_keys__", ()))
    for name, hint in hints.items():
        origin = typing.get_origin(hint)
        if origin in (typing.NotRequired, typing_extensions.NotRequired):
            required.discard(name)
        elif origin in (typing.Required, typing_extensions.Required):
            required.add(name)
    return hints, frozenset(required & hints.keys())


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and (typing.is_typeddict(tp) or typing_extensions.is_typeddict(tp))


def _strip(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin in (
            typing.NotRequired,
            typing.Required,
            typing_extensions.NotRequired,
            typing_extensions.Required,
            typing.Annotated,
        ):
            tp = typing.get_args(tp)[0]
            continue
        if getattr(typing_extensions, "ReadOnly", None) is not None and origin is typing_extensions.ReadOnly:
            tp = typing.get_args(tp)[0]
            continue
        return tp


def _union_members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members: list[Any] = []
        for arg in typing.get_args(tp):
            members.extend(_union_members(arg))
        return members
    return [tp]


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Literal, typing_extensions.Literal)


def _mapping_value_type(tp: Any) -> Any | None:
    """The value type if ``tp`` is a mapping (Dict[str, X], UntypedStripeObject[X]), else None."""
    origin = typing.get_origin(tp) or tp
    if origin in (dict, dict) or (isinstance(origin, type) and origin.__name__ == "UntypedStripeObject"):
        args = typing.get_args(tp)
        return args[-1] if args else Any
    return None


def _is_list(tp: Any) -> bool:
    return (typing.get_origin(tp) or tp) in (list, list)


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f":{k}=>{_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


# ------------------------------------------------------------------------------------- validation
def validate(cls: type | str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate decoded ``params`` against the TypedDict ``cls``; return them coerced."""
    if isinstance(cls, str):
        cls = params_class(cls)
    return _validate_typeddict(cls, params, "")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _validate_typeddict(cls: type, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParamError(f"Invalid object{': ' + path if path else ''}", param=path or None)
    hints, required = _fields(cls)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in hints:
            param = _join(path, key)
            message = f"Received unknown parameter: {param}"
            close = difflib.get_close_matches(key, list(hints), n=1, cutoff=0.8)
            if close:
                message += f". Did you mean {close[0]}?"
            raise ParamError(message, param=param, code="parameter_unknown")
        out[key] = _validate_value(hints[key], item, _join(path, key))
    for key in sorted(required):
        if key not in value:
            param = _join(path, key)
            raise ParamError(f"Missing required param: {param}.", param=param, code="parameter_missing")
    return out


def _validate_value(tp: Any, value: Any, path: str) -> Any:
    members = _union_members(tp)
    if any(m is Any for m in members):
        return value
    literals: list[Any] = []
    allow_empty = False
    has_str = False
    others: list[Any] = []
    for member in members:
        if _is_literal(member):
            for literal in typing.get_args(member):
                if literal == "":
                    allow_empty = True
                else:
                    literals.append(literal)
        elif member is str:
            has_str = True
        elif member is type(None):
            continue
        else:
            others.append(member)

    if isinstance(value, str):
        if value == "" and allow_empty:
            return ""
        if literals:
            # ``Literal[...]|str`` is the SDK's forward-compatible spelling of an enum: the API still
            # accepts only the listed values, so enforce them.
            if value in [str(v) for v in literals]:
                return value
            scalar_errors = _try_scalars(others, value, path)
            if scalar_errors is not _NO_MATCH:
                return scalar_errors
            allowed = [str(v) for v in literals]
            listing = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
            raise ParamError(f"Invalid {path}: must be one of {listing}", param=path)
        if has_str:
            return value
        result = _try_scalars(others, value, path)
        if result is not _NO_MATCH:
            return result
        first_error = _scalar_error(others, value, path)
        raise first_error

    if isinstance(value, dict):
        errors: list[ParamError] = []
        for member in others:
            try:
                if _is_typeddict(member):
                    return _validate_typeddict(member, value, path)
                value_type = _mapping_value_type(member)
                if value_type is not None:
                    return _validate_mapping(value_type, value, path)
                if _is_list(member) and all(_INT_RE.match(k) for k in value):
                    ordered = [value[k] for k in sorted(value, key=int)]
                    return _validate_list(member, ordered, path)
            except ParamError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        if has_str or literals:
            raise ParamError(f"Invalid string: {_render(value)}", param=path)
        raise ParamError(f"Invalid {_describe(others)}: {path}", param=path)

    if isinstance(value, list):
        for member in others:
            if _is_list(member):
                return _validate_list(member, value, path)
        raise ParamError(f"Invalid {_describe(others) if others else 'string'}: {path}", param=path)
    return value


_NO_MATCH = object()


def _try_scalars(others: list[Any], value: str, path: str) -> Any:
    for member in others:
        try:
            return _coerce_scalar(member, value, path)
        except ParamError:
            continue
    return _NO_MATCH


def _scalar_error(others: list[Any], value: str, path: str) -> ParamError:
    for member in others:
        try:
            _coerce_scalar(member, value, path)
        except ParamError as exc:
            if member in (int, bool, float, Decimal):
                return exc
    if any(_is_typeddict(m) or _mapping_value_type(m) is not None for m in others):
        return ParamError(f"Invalid object: {path}", param=path)
    if any(_is_list(m) for m in others):
        return ParamError(f"Invalid array: {path}", param=path)
    return ParamError(f"Invalid value for {path}: {value}", param=path)


def _coerce_scalar(tp: Any, value: str, path: str) -> Any:
    if tp is bool:
        if value in ("true", "false"):
            return value == "true"
        raise ParamError(f"Invalid boolean: {value}", param=path, code="parameter_invalid_boolean")
    if tp is int:
        if _INT_RE.match(value.strip()):
            return int(value)
        raise ParamError(f"Invalid integer: {value}", param=path, code="parameter_invalid_integer")
    if tp in (float, Decimal):
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ParamError(f"Invalid decimal: {value}", param=path, code="parameter_invalid_decimal")
        return number
    raise ParamError(f"Invalid value for {path}: {value}", param=path)


def _describe(others: list[Any]) -> str:
    if any(_is_list(m) for m in others):
        return "array"
    if any(_is_typeddict(m) or _mapping_value_type(m) is not None for m in others):
        return "object"
    return "value"


def _validate_list(tp: Any, items: list[Any], path: str) -> list[Any]:
    args = typing.get_args(_strip(tp))
    item_type = args[0] if args else Any
    return [_validate_value(item_type, item, f"{path}[{i}]") for i, item in enumerate(items)]


def _validate_mapping(value_type: Any, value: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    is_metadata = path == "metadata" or path.endswith("[metadata]")
    if is_metadata and len(value) > METADATA_MAX_KEYS:
        raise ParamError(f"Invalid {path}: metadata can have at most {METADATA_MAX_KEYS} keys", param=path)
    for key, item in value.items():
        if is_metadata and len(key) > METADATA_MAX_KEY_LENGTH:
            raise ParamError(
                f"Metadata keys can have up to {METADATA_MAX_KEY_LENGTH} characters; '{key}' has {len(key)}",
                param=_join(path, key),
            )
        if is_metadata and isinstance(item, str) and len(item) > METADATA_MAX_VALUE_LENGTH:
            raise ParamError(
                f"Metadata values can have up to {METADATA_MAX_VALUE_LENGTH} characters", param=_join(path, key)
            )
        out[key] = _validate_value(value_type, item, _join(path, key))
    return out
