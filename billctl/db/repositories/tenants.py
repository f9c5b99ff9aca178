"""Tenant look-ups shared by the usage paths (the stream reader, file imports, views)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from billctl.db.models import Discount, PlanAssignment, Tenant
from billctl.db.tables import table_of


@dataclass
class TenantInfo:
    id: int
    timezone: str

    @property
    def person(self) -> bytes:
        """The BLAKE2b personalisation that puts the tenant into an event id's dedupe hash."""
        return self.id.to_bytes(8, "big")


def tenant_directory(conn: Connection) -> dict[str, TenantInfo]:
    """Every tenant by key: its id and billing time zone."""
    table = table_of(Tenant)
    rows = conn.execute(sa.select(table.c.key, table.c.id, table.c.timezone))
    return {key: TenantInfo(tid, tz) for key, tid, tz in rows}


def lock_tenants(conn: Connection, tenant_ids: Iterable[int], *, exclusive: bool = False) -> None:
    """Serialise ingest against finalize per tenant (no late event can slip between them).

    Ingest takes shared locks (aggregators do not block each other); finalize takes an
    exclusive one. SQLite has one writer at a time: a no-op write takes its write lock."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return
    table = table_of(Tenant)
    if conn.dialect.name == "postgresql":
        query = sa.select(table.c.id).where(table.c.id.in_(ids)).order_by(table.c.id)
        conn.execute(query.with_for_update(read=not exclusive))
    else:
        conn.execute(sa.update(table).where(table.c.id == ids[0]).values(id=table.c.id))


def time_zones(conn: Connection) -> list[str]:
    """The billing time zones tenants use."""
    return [tz for (tz,) in conn.execute(sa.select(col(Tenant.timezone)).distinct())]


def find_tenant(session: Session, key: str) -> Tenant | None:
    return session.exec(select(Tenant).where(Tenant.key == key)).first()


def assignments(session: Session, tenant_id: int) -> list[PlanAssignment]:
    return list(
        session.exec(
            select(PlanAssignment)
            .where(PlanAssignment.tenant_id == tenant_id)
            .order_by(col(PlanAssignment.effective_at), col(PlanAssignment.id))
        )
    )


def list_discounts(session: Session, tenant_id: int) -> list[Discount]:
    return list(session.exec(select(Discount).where(Discount.tenant_id == tenant_id).order_by(col(Discount.id))))
