"""The Core ``Table`` of a model class, typed (``Model.__table__`` is not declared for the type
checker), for the Core statements of the bulk paths (upserts, COPY, locks)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def table_of(model: type[Any]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table), model
    return table


def row_id(row: Any) -> int:
    """The primary key of a stored row (``id`` is typed ``int | None`` until the row is flushed)."""
    assert row.id is not None, f"{type(row).__name__} not stored yet"
    return int(row.id)
