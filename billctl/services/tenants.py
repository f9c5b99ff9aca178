"""Tenants, plan assignments and discounts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from billctl.core import bounds, periods
from billctl.core.bounds import quote
from billctl.core.lifecycle import InvoiceStatus
from billctl.core.money import MoneyError, billing_rule, currency_problem, exponent, fits_minor_unit, parse_decimal
from billctl.db.models import Discount, PlanAssignment, Tenant, utcnow
from billctl.db.repositories import tenants as tenants_repo
from billctl.db.repositories.tenants import assignments, list_discounts
from billctl.db.tables import row_id
from billctl.errors import BadInput, Conflict, NotFound, ref
from billctl.services.context import App, audit, check_text
from billctl.services.plans import latest as latest_plan

__all__ = [
    "STATUSES",
    "TenantFields",
    "add_discount",
    "assign_plan",
    "assignments",
    "create_tenant",
    "get_tenant",
    "list_discounts",
    "list_tenants",
    "remove_discount",
    "update_tenant",
]

KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
STATUSES = ("active", "suspended", "closed")


@dataclass
class TenantFields:
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    currency: str | None = None
    tax_rate: str | None = None
    status: str | None = None
    external_id: str | None = None


def _validate(fields: TenantFields, bucket_seconds: int) -> dict[str, Any]:
    """Check every given field; raise BadInput naming the field and the fix."""
    out: dict[str, Any] = {}
    if fields.name is not None:
        check_text(fields.name.strip(), ref("name"), bounds.TENANT_NAME, required=True)
        out["name"] = fields.name.strip()
    if fields.email is not None:
        check_text(fields.email, ref("email"), bounds.EMAIL)
        if fields.email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", fields.email):
            raise BadInput(
                f"{ref('email')} {quote(fields.email)} is not an e-mail address",
                hint="e.g. billing@acme.com",
                field="email",
            )
        out["email"] = fields.email
    if fields.timezone is not None:
        try:
            tz = periods.validate_timezone(fields.timezone)
            periods.check_bucket_alignment(bucket_seconds, tz)
        except periods.PeriodError as exc:
            raise BadInput(f"{ref('timezone')}: {exc}", field="timezone") from None
        out["timezone"] = tz
    if fields.currency is not None:
        code = fields.currency.upper()
        problem = currency_problem(code)
        if problem:
            raise BadInput(f"{ref('currency')} {problem}", hint="e.g. USD, EUR, KRW, BHD", field="currency")
        out["currency"] = code
    if fields.tax_rate is not None:
        try:
            rate = Decimal(fields.tax_rate.strip().rstrip("%"))
        except InvalidOperation:
            raise BadInput(
                f"{ref('tax_rate')} {quote(fields.tax_rate)} is not a number",
                hint="give a percent such as 8.25",
                field="tax_rate",
            ) from None
        if not rate.is_finite() or rate < 0 or rate > 100 or bounds.decimals(rate) > bounds.MAX_TAX_DECIMALS:
            raise BadInput(
                f"{ref('tax_rate')} {quote(fields.tax_rate)} must be a percent between 0 and 100",
                hint=f"at most {bounds.MAX_TAX_DECIMALS} decimal places, e.g. 8.25",
                field="tax_rate",
            )
        out["tax_rate"] = f"{rate.normalize():f}" if rate else "0"
    if fields.status is not None:
        if fields.status not in STATUSES:
            raise BadInput(
                f"{ref('status')} {quote(fields.status)} must be one of {', '.join(STATUSES)}", field="status"
            )
        out["status"] = fields.status
    if fields.external_id is not None:
        check_text(fields.external_id, ref("external_id"), bounds.EXTERNAL_ID)
        out["external_id"] = fields.external_id or None
    return out


def get_tenant(session: Session, key: str) -> Tenant:
    tenant = tenants_repo.find_tenant(session, key)
    if tenant is None:
        raise NotFound(f"unknown tenant {quote(key)}", hint="see `billctl tenants list`")
    return tenant


def create_tenant(app: App, key: str, fields: TenantFields) -> Tenant:
    if not KEY_RE.fullmatch(key):
        raise BadInput(
            f"tenant id {quote(key)} is invalid",
            hint="use 1-64 letters, digits and _ . : - (it is the tenant_id gateways send)",
        )
    fields.name = fields.name if fields.name is not None else key
    fields.timezone = fields.timezone or app.config.billing.timezone
    fields.currency = fields.currency or app.config.billing.currency
    fields.tax_rate = fields.tax_rate if fields.tax_rate is not None else "0"
    fields.status = fields.status or "active"
    values = _validate(fields, app.config.usage.bucket_seconds)
    with app.uow() as uow:
        session = uow.session
        if tenants_repo.find_tenant(session, key) is not None:
            raise Conflict(f"tenant '{key}' already exists", hint=f"change it with `billctl tenants update {key}`")
        tenant = Tenant(key=key, **values)
        session.add(tenant)
        session.flush()
        audit(session, app, "tenant.create", "tenant", key, **{k: str(v) for k, v in values.items()})
    return tenant


def update_tenant(app: App, key: str, fields: TenantFields) -> Tenant:
    values = _validate(fields, app.config.usage.bucket_seconds)
    if not values:
        raise BadInput("nothing to update", hint="give at least one option, see --help")
    with app.uow() as uow:
        session = uow.session
        tenant = get_tenant(session, key)
        if "currency" in values and values["currency"] != tenant.currency:
            from billctl.db.models import Invoice

            if session.exec(select(Invoice.id).where(Invoice.tenant_id == tenant.id)).first():
                raise Conflict(
                    f"tenant '{key}' already has invoices in {tenant.currency}",
                    hint="currency cannot change once invoiced; create a new tenant",
                )
        changed = {k: [str(getattr(tenant, k)), str(v)] for k, v in values.items() if getattr(tenant, k) != v}
        for name, value in values.items():
            setattr(tenant, name, value)
        tenant.updated_at = utcnow()
        session.add(tenant)
        audit(session, app, "tenant.update", "tenant", key, changes=changed)
    return tenant


def list_tenants(app: App, status: str | None = None) -> list[Tenant]:
    if status is not None and status not in STATUSES:
        raise BadInput(f"{ref('status')} {quote(status)} must be one of {', '.join(STATUSES)}", field="status")
    with app.uow() as uow:
        session = uow.session
        query = select(Tenant).order_by(col(Tenant.key))
        if status:
            query = query.where(Tenant.status == status)
        return list(session.exec(query))


def assign_plan(
    app: App, key: str, plan_code: str, effective: str | None, now: datetime | None = None
) -> PlanAssignment:
    """Assign a plan. Default start: the next period start in the tenant's time zone, or the
    current period's start when the tenant has no plan yet. ``effective`` (YYYY-MM-DD) starts it
    at that day's midnight in the tenant's time zone; a date inside a period splits it into segments."""
    now = now or app.now()
    with app.uow() as uow:
        session = uow.session
        tenant = get_tenant(session, key)
        plan = latest_plan(session, plan_code)
        if plan is None:
            raise NotFound(f"unknown plan {quote(plan_code)}", hint="see `billctl plans list`")
        if plan.archived:
            raise Conflict(f"plan '{plan_code}' is archived and cannot be assigned")
        if plan.currency != tenant.currency:
            raise BadInput(
                f"plan '{plan_code}' is priced in {plan.currency} but tenant '{key}' pays in {tenant.currency}",
                hint="assign a plan in the tenant's currency",
            )
        history = assignments(session, row_id(tenant))
        if effective:
            try:
                effective_at = periods.day_start(effective, tenant.timezone)
            except periods.PeriodError as exc:
                raise BadInput(f"{ref('effective')}: {exc}", field="effective") from None
        elif history:
            effective_at = periods.next_period_start(now, tenant.timezone)
        else:
            effective_at = periods.period_of(now, tenant.timezone).bounds(tenant.timezone)[0]
        _refuse_finalized(session, tenant, effective_at)
        row = PlanAssignment(tenant_id=row_id(tenant), plan_code=plan.code, effective_at=effective_at, actor=app.actor)
        session.add(row)
        session.flush()
        audit(session, app, "plan.assign", "tenant", key, plan=plan.code, effective_at=effective_at.isoformat())
    return row


def _refuse_finalized(session: Session, tenant: Tenant, effective_at: datetime) -> None:
    from billctl.db.models import Invoice

    live = session.exec(
        select(Invoice).where(
            Invoice.tenant_id == tenant.id,
            Invoice.status != InvoiceStatus.VOID,
            Invoice.period_end > effective_at,
        )
    ).first()
    if live is not None:
        raise Conflict(
            f"period {live.period} of tenant '{tenant.key}' is already finalized "
            f"({live.number}); a plan change cannot take effect inside it",
            hint="choose an effective date after that period, or void the invoice first",
        )


def add_discount(
    app: App, key: str, kind: str, value: str, valid_from: str | None, valid_until: str | None, description: str
) -> Discount:
    """A discount from ``valid_from`` (default: today in the tenant's time zone, so it applies to
    the period under way) to ``valid_until`` (inclusive; None: open-ended)."""
    if kind not in ("percent", "fixed"):
        raise BadInput(f"{ref('kind')} {quote(kind)} must be percent or fixed", field="kind")
    try:
        amount = parse_decimal(value, field=ref("value"))
    except MoneyError as exc:
        raise BadInput(str(exc), field="value") from None
    if amount <= 0:
        raise BadInput(f"{ref('value')} {quote(value)} must be greater than 0", field="value")
    if kind == "percent" and (amount > 100 or bounds.decimals(amount) > bounds.MAX_TAX_DECIMALS):
        raise BadInput(
            f"{ref('value')} {quote(value)} must be a percent up to 100",
            hint=f"at most {bounds.MAX_TAX_DECIMALS} decimal places, e.g. 12.5",
            field="value",
        )
    check_text(description, ref("description"), bounds.DISCOUNT_DESCRIPTION)
    for name, text in (("from", valid_from), ("until", valid_until)):
        if text is not None:
            try:
                periods.day_start(text, "UTC")
            except periods.PeriodError as exc:
                raise BadInput(f"{ref(name)}: {exc}", field=name) from None
    with app.uow() as uow:
        session = uow.session
        tenant = get_tenant(session, key)
        if valid_from is None:
            valid_from = app.now().astimezone(ZoneInfo(tenant.timezone)).date().isoformat()
        if valid_until is not None and valid_until < valid_from:
            raise BadInput(f"{ref('until')} {valid_until} is before {ref('from')} {valid_from}", field="until")
        if kind == "fixed":
            limit = bounds.minor_limit(bounds.MAX_AMOUNT_MINOR, exponent(tenant.currency))
            if amount > limit:
                raise BadInput(
                    f"{ref('value')} {quote(value)} is above the limit of {limit:,f} {tenant.currency}", field="value"
                )
            if not fits_minor_unit(amount, tenant.currency):
                raise BadInput(
                    f"{ref('value')} {quote(value)} is finer than {tenant.currency} allows "
                    f"({billing_rule(tenant.currency)})",
                    field="value",
                )
        row = Discount(
            tenant_id=row_id(tenant),
            kind=kind,
            value=str(amount),
            valid_from=valid_from,
            valid_until=valid_until,
            description=description,
        )
        session.add(row)
        session.flush()
        audit(
            session,
            app,
            "discount.add",
            "tenant",
            key,
            kind=kind,
            value=str(amount),
            valid_from=valid_from,
            valid_until=valid_until,
        )
    return row


def remove_discount(app: App, key: str, discount_id: int) -> None:
    with app.uow() as uow:
        session = uow.session
        tenant = get_tenant(session, key)
        row = session.get(Discount, discount_id)
        if row is None or row.tenant_id != tenant.id:
            raise NotFound(f"tenant '{key}' has no discount {discount_id}", hint=f"see `billctl tenants show {key}`")
        session.delete(row)
        audit(session, app, "discount.remove", "tenant", key, discount_id=discount_id)
