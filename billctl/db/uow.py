"""One unit of work: one database transaction for one use case.

Services open every transaction through ``app.uow()`` and never build a ``Session`` or call
``engine.begin()`` themselves; the CLI never sees a session at all (it calls a service)::

    with app.uow() as uow:
        tenant = uow.session.get(Tenant, 1)
        ...
    # committed here when the block ends normally; rolled back when it raises

``readonly=True`` is for reports and listings: nothing is committed (the transaction is rolled back
at the end, so a read can never write by accident). ``dry_run=True`` runs the whole use case, writes
and all, and rolls it back: what a dry run shows is what the real run would do (DESIGN.md invariant 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported by the commands that use the database only
    from sqlalchemy.engine import Connection, Engine
    from sqlmodel import Session


class UnitOfWork:
    """A session in one transaction, and what the use case needs to know about it."""

    def __init__(self, session: Session, *, readonly: bool = False, dry_run: bool = False) -> None:
        self.session = session
        self.readonly = readonly
        self.dry_run = dry_run

    @property
    def connection(self) -> Connection:
        """The transaction's connection (for Core statements and row locks)."""
        return self.session.connection()

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def flush(self) -> None:
        self.session.flush()


@contextmanager
def unit_of_work(engine: Engine, *, readonly: bool = False, dry_run: bool = False) -> Iterator[UnitOfWork]:
    """A ``UnitOfWork`` over ``engine``: committed at the end of the block unless ``readonly`` or
    ``dry_run`` (then rolled back), rolled back whenever the block raises."""
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        transaction = session.begin()
        try:
            yield UnitOfWork(session, readonly=readonly, dry_run=dry_run)
        except BaseException:
            transaction.rollback()
            raise
        if readonly or dry_run:
            # detach what was loaded first: a rollback expires every loaded object, and the caller
            # still reads the ones the use case returned (they keep the values they were read with)
            session.expunge_all()
            transaction.rollback()
        else:
            transaction.commit()
