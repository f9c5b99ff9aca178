"""Reading invoices: by number, listed, and the tenants a billing command covers."""

from __future__ import annotations

from sqlmodel import Session, col, select

from billctl.core import periods
from billctl.core.bounds import quote
from billctl.core.periods import Period
from billctl.db.models import Invoice, InvoiceLine, Tenant
from billctl.db.repositories import invoices as repo
from billctl.errors import BadInput, NotFound, ref
from billctl.services.context import App


def parse_period(text: str) -> Period:
    """A period given on the command line (YYYY-MM); BadInput naming --period otherwise."""
    try:
        return Period.parse(text)
    except periods.PeriodError as exc:
        raise BadInput(f"{ref('period')}: {exc}", field="period") from None


def billed_tenants(session: Session, tenant_key: str | None) -> list[Tenant]:
    """The tenant named ``tenant_key`` (NotFound if none), or every active tenant, in id order."""
    if tenant_key:
        tenant = session.exec(select(Tenant).where(Tenant.key == tenant_key)).first()
        if tenant is None:
            raise NotFound(f"unknown tenant {quote(tenant_key)}", hint="see `billctl tenants list`", field="tenant")
        return [tenant]
    return list(session.exec(select(Tenant).where(Tenant.status == "active").order_by(col(Tenant.id))))


def tenant_id_of(session: Session, tenant_key: str) -> int:
    """The id of the tenant named ``tenant_key`` (NotFound if none)."""
    tenant_id = billed_tenants(session, tenant_key)[0].id
    assert tenant_id is not None
    return tenant_id


def list_invoices(
    app: App, tenant_key: str | None = None, period: Period | None = None, status: str | None = None
) -> list[tuple[Invoice, Tenant]]:
    with app.uow(readonly=True) as uow:
        return repo.with_tenants(
            uow.session,
            tenant_id=tenant_id_of(uow.session, tenant_key) if tenant_key else None,
            period=str(period) if period else None,
            status=status,
        )


def find_invoice(session: Session, ref: str) -> Invoice:
    """An invoice by number (INV-2026-10-000001) or numeric id; NotFound otherwise."""
    invoice = repo.by_ref(session, ref)
    if invoice is None:
        raise NotFound(f"unknown invoice {quote(ref)}", hint="see `billctl invoices list`", field="invoice")
    return invoice


def get_invoice(app: App, ref: str) -> tuple[Invoice, Tenant, list[InvoiceLine]]:
    """An invoice by number (INV-2026-10-000001) or numeric id, its tenant and its lines."""
    with app.uow(readonly=True) as uow:
        invoice = find_invoice(uow.session, ref)
        tenant = uow.session.get(Tenant, invoice.tenant_id)
        assert tenant is not None  # a foreign key
        return invoice, tenant, repo.lines_of(uow.session, invoice.id)
