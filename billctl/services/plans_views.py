"""Read-only views of plans for the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billctl.db.models import Plan
    from billctl.services.context import App


def plan_with_versions(app: App, code: str, version: int | None = None) -> tuple[Plan, list[Plan]]:
    """One plan (the latest version, or ``version``) and every version of it, oldest first."""
    from billctl.services import plans as svc

    with app.uow() as uow:  # writes nothing; committed so the rows stay loaded
        return svc.get_plan(uow.session, code, version), svc.versions(uow.session, code)
