"""What every service needs: settings, an engine on a current schema, and who is acting.

Built for every command, so it imports nothing heavy: the engine (SQLAlchemy), the models (SQLModel)
and the unit of work are imported when a command first uses the database, and the schema check
compares the ``alembic_version`` row with the revisions billctl knows (``billctl.db.checks``), with
no Alembic at all."""

from __future__ import annotations

import getpass
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from billctl.config import Config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from billctl.db.uow import UnitOfWork


def default_actor() -> str:
    from billctl.core.bounds import ACTOR

    for name in ("BILLCTL_ACTOR", "USER", "LOGNAME"):
        if os.environ.get(name):
            return os.environ[name][:ACTOR]
    try:
        return getpass.getuser()[:ACTOR]
    except Exception:
        return "unknown"


@dataclass
class App:
    config: Config
    actor: str = field(default_factory=default_actor)
    _engine: Engine | None = None
    _checked: bool = False

    @property
    def engine(self) -> Engine:
        from billctl.db.checks import require_current

        if self._engine is None:
            from billctl.db.engine import create_db_engine

            self._engine = create_db_engine(self.config.database_url)
        if not self._checked:
            require_current(self._engine)
            self._checked = True
        return self._engine

    def raw_engine(self, *, create: bool = False) -> Engine:
        """The engine without the schema check (for `db upgrade` itself, which alone may ``create``
        a new SQLite file)."""
        if self._engine is None:
            from billctl.db.engine import create_db_engine

            self._engine = create_db_engine(self.config.database_url, create=create)
        return self._engine

    def uow(self, *, readonly: bool = False, dry_run: bool = False) -> AbstractContextManager[UnitOfWork]:
        """One unit of work (one transaction) on a current schema: see ``billctl.db.uow``."""
        from billctl.db.uow import unit_of_work

        return unit_of_work(self.engine, readonly=readonly, dry_run=dry_run)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def audit(
    session: Session, app: App, action: str, object_type: str, object_id: object, reason: str = "", **detail: object
) -> None:
    from billctl.db.models import AuditLog

    session.add(
        AuditLog(
            actor=app.actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            reason=reason,
            detail=detail,
        )
    )


def check_text(value: str, flag: str, max_len: int, *, required: bool = False) -> None:
    """Refuse text that does not fit its column (``max_len`` characters, no control characters):
    checked where it enters, so SQLite (which would store anything) and PostgreSQL agree."""
    from billctl.core.bounds import text_problem
    from billctl.errors import BadInput

    problem = text_problem(value, flag, max_len, required=required)
    if problem:
        raise BadInput(problem)
