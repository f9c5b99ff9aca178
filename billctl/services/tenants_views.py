"""Read-only views of tenants for the command line: one tenant with its history, a tenant's discounts,
and the tenant list (on SQLite through the light read path, ``billctl.db.read``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from billctl.core.bounds import quote
from billctl.errors import BadInput, ref

if TYPE_CHECKING:
    from billctl.db.models import Discount, PlanAssignment, Tenant
    from billctl.services.context import App

STATUSES = ("active", "suspended", "closed")  # as billctl.services.tenants.STATUSES (a test checks they agree)


@dataclass(frozen=True)
class TenantRow:
    """A tenant as the list shows it (the same attributes as the model's, without the ORM)."""

    key: str
    name: str
    email: str
    timezone: str
    currency: str
    tax_rate: str
    status: str
    external_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class TenantDetails:
    tenant: Tenant
    history: list[PlanAssignment]
    discounts: list[Discount]


def list_tenants(app: App, status: str | None = None) -> list[TenantRow]:
    """Tenants ordered by key, optionally of one status. On SQLite this reads with the standard
    library's driver (no SQLAlchemy, no models: `billctl tenants list` starts fast)."""
    if status is not None and status not in STATUSES:
        raise BadInput(f"{ref('status')} {quote(status)} must be one of {', '.join(STATUSES)}", field="status")
    from billctl.db import read

    reader = read.sqlite_reader(app.config)
    if reader is not None:
        from contextlib import closing

        with closing(reader):
            return [TenantRow(*row) for row in read.tenants(reader, status)]
    from billctl.services import tenants as svc

    return [
        TenantRow(t.key, t.name, t.email, t.timezone, t.currency, t.tax_rate, t.status, t.external_id, t.created_at)
        for t in svc.list_tenants(app, status)
    ]


def tenant_details(app: App, key: str) -> TenantDetails:
    from billctl.services import tenants as svc

    with app.uow() as uow:  # writes nothing; committed so the rows stay loaded
        tenant = svc.get_tenant(uow.session, key)
        assert tenant.id is not None
        return TenantDetails(
            tenant, svc.assignments(uow.session, tenant.id), svc.list_discounts(uow.session, tenant.id)
        )


def tenant_discounts(app: App, key: str) -> list[Discount]:
    from billctl.services import tenants as svc

    with app.uow() as uow:  # writes nothing; committed so the rows stay loaded
        tenant = svc.get_tenant(uow.session, key)
        assert tenant.id is not None
        return svc.list_discounts(uow.session, tenant.id)
