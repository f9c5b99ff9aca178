"""The audit trail, read for `billctl audit list`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from billctl.services.context import App


def audit_entries(
    app: App, *, action: str | None = None, object_id: str | None = None, actor: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Recorded state changes, newest first, as documents (``*`` in ``action`` matches anything)."""
    import sqlalchemy as sa
    from sqlmodel import col

    from billctl.db.models import AuditLog

    query = sa.select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)
    if action:
        query = query.where(col(AuditLog.action).like(action.replace("*", "%")))
    if object_id:
        query = query.where(col(AuditLog.object_id) == object_id)
    if actor:
        query = query.where(col(AuditLog.actor) == actor)
    with app.uow(readonly=True) as uow:
        return [
            {
                "id": r.id,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "action": r.action,
                "object_type": r.object_type,
                "object": r.object_id,
                "reason": r.reason,
                "detail": r.detail,
            }
            for (r,) in uow.session.execute(query)
        ]
