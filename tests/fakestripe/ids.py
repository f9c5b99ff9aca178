"""Object ids and the "No such ..." error, shared by the resource modules."""

from __future__ import annotations

import secrets
import string

from .validation import ParamError

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def missing(kind: str, object_id: str, param: str = "id", status: int = 404) -> ParamError:
    return ParamError(f"No such {kind}: '{object_id}'", param=param, code="resource_missing", status=status)
