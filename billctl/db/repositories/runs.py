"""What the monthly close records and reads: the run lock (a lease), its steps, and the invoice facts
its guardrails compare.

The lock statements run on a unit of work's connection (Core statements: the lease is a
compare-and-set on one row, and each takes its own short transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, col, select

from billctl.core.lifecycle import InvoiceStatus
from billctl.db.models import Invoice, RunLock, RunStep, Tenant

# ---------------------------------------------------------------- the lock


def _lock_table() -> sa.Table:
    return SQLModel.metadata.tables[str(RunLock.__tablename__)]


def lock_row(connection: Connection, name: str) -> sa.Row[Any] | None:
    """The lease on ``name`` (holder, host, pid, grp, acquired_at, heartbeat_at), None when free."""
    table = _lock_table()
    return connection.execute(sa.select(table).where(table.c.name == name)).first()


def insert_lock(connection: Connection, name: str, values: dict[str, Any]) -> None:
    """Take a free lock (IntegrityError when another run inserted it first)."""
    connection.execute(sa.insert(_lock_table()).values(name=name, **values))


def take_over_lock(
    connection: Connection, name: str, holder: str, heartbeat_at: datetime, values: dict[str, Any]
) -> bool:
    """Compare-and-set: the lease passes to ``values`` only if ``holder`` still holds it with the
    heartbeat seen; False when someone else moved first."""
    table = _lock_table()
    result = connection.execute(
        sa.update(table)
        .where(table.c.name == name, table.c.holder == holder, table.c.heartbeat_at == heartbeat_at)
        .values(**values)
    )
    return result.rowcount == 1


def renew_lock(connection: Connection, name: str, holder: str, at: datetime) -> bool:
    """A heartbeat; False when ``holder`` no longer holds the lock."""
    table = _lock_table()
    result = connection.execute(
        sa.update(table).where(table.c.name == name, table.c.holder == holder).values(heartbeat_at=at)
    )
    return result.rowcount == 1


def delete_lock(connection: Connection, name: str, holder: str) -> None:
    table = _lock_table()
    connection.execute(sa.delete(table).where(table.c.name == name, table.c.holder == holder))


# ---------------------------------------------------------------- steps


def start_step(session: Session, run_id: str, period: str, step: str) -> int | None:
    row = RunStep(run_id=run_id, period=period, step=step, state="started")
    session.add(row)
    session.flush()
    return row.id


def finish_step(session: Session, step_id: int, state: str, detail: dict[str, Any], at: datetime) -> None:
    session.execute(
        sa.update(RunStep).where(col(RunStep.id) == step_id).values(state=state, detail=detail, finished_at=at)
    )


# ---------------------------------------------------------------- what the guardrails compare


def live_totals(session: Session, period: str) -> dict[int, int]:
    """tenant id -> total of its live (not void) invoice for ``period``."""
    rows = session.exec(
        select(col(Invoice.tenant_id), col(Invoice.total_minor)).where(
            col(Invoice.period) == period, col(Invoice.status) != InvoiceStatus.VOID
        )
    )
    return {tid: total for tid, total in rows}


def hold_states(session: Session, period: str) -> dict[int, tuple[str | None, bool, bool]]:
    """invoice id -> (hold reason, released by an operator, already in Stripe) for ``period``."""
    rows = session.exec(
        select(
            col(Invoice.id), col(Invoice.hold_reason), col(Invoice.released_at), col(Invoice.stripe_invoice_id)
        ).where(col(Invoice.period) == period, col(Invoice.status) != InvoiceStatus.VOID)
    )
    return {i: (reason, released is not None, stripe is not None) for i, reason, released, stripe in rows if i}


def active_tenant_keys(session: Session) -> list[str]:
    return [t.key for t in session.exec(select(Tenant).where(col(Tenant.status) == "active"))]
