"""billctl tenants create|list|show|update|assign-plan"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import OutputOpt, lazy_module, state

if TYPE_CHECKING:
    from billctl.services import tenants as svc
else:
    svc = lazy_module("billctl.services.tenants")


app = typer.Typer(help="Tenants: who is billed, in which currency, time zone and plan.", no_args_is_help=True)

Name = Annotated[str | None, typer.Option("--name", help="Display name.")]
Email = Annotated[str | None, typer.Option("--email", help="Billing e-mail.")]
Tz = Annotated[
    str | None, typer.Option("--timezone", "--tz", help="IANA billing time zone (default billing.timezone).")
]
Currency = Annotated[str | None, typer.Option("--currency", help="ISO 4217 currency (default billing.currency).")]
Tax = Annotated[str | None, typer.Option("--tax-rate", help="Tax rate in percent, e.g. 8.25.")]
Status = Annotated[str | None, typer.Option("--status", help="active, suspended or closed.")]
External = Annotated[str | None, typer.Option("--external-id", help="Your CRM or account id.")]


def tenant_doc(t) -> dict:
    return {
        "id": t.key,
        "name": t.name,
        "email": t.email,
        "timezone": t.timezone,
        "currency": t.currency,
        "tax_rate": t.tax_rate,
        "status": t.status,
        "external_id": t.external_id,
        "created_at": t.created_at.isoformat(),
    }


@app.command("create")
def create(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(help="The tenant_id gateways send, e.g. acme.")],
    name: Name = None,
    email: Email = None,
    timezone: Tz = None,
    currency: Currency = None,
    tax_rate: Tax = None,
    status: Status = None,
    external_id: External = None,
    output: OutputOpt = None,
) -> None:
    """Create a tenant."""
    st = state(ctx)
    tenant = svc.create_tenant(
        st.app, tenant_id, svc.TenantFields(name, email, timezone, currency, tax_rate, status, external_id)
    )
    out = st.output(output)
    if out.fmt == "json":
        out.json(tenant_doc(tenant))
    else:
        out.success(f"created tenant {tenant.key} ({tenant.currency}, {tenant.timezone}, tax {tenant.tax_rate} %)")


@app.command("update")
def update(
    ctx: typer.Context,
    tenant_id: str,
    name: Name = None,
    email: Email = None,
    timezone: Tz = None,
    currency: Currency = None,
    tax_rate: Tax = None,
    status: Status = None,
    external_id: External = None,
) -> None:
    """Change a tenant's details or status."""
    st = state(ctx)
    tenant = svc.update_tenant(
        st.app, tenant_id, svc.TenantFields(name, email, timezone, currency, tax_rate, status, external_id)
    )
    st.out.success(f"updated tenant {tenant.key}")


@app.command("list")
def list_(ctx: typer.Context, status: Status = None, output: OutputOpt = None) -> None:
    """List tenants."""
    from billctl.services.tenants_views import list_tenants

    st = state(ctx)
    rows = list_tenants(st.app, status)
    out = st.output(output)
    out.rows(
        ["id", "name", "email", "timezone", "currency", "tax_rate", "status"],
        [(t.key, t.name, t.email, t.timezone, t.currency, t.tax_rate, t.status) for t in rows],
        documents=[tenant_doc(t) for t in rows],
        title=f"{len(rows)} tenant(s)",
    )


@app.command("show")
def show(ctx: typer.Context, tenant_id: str, output: OutputOpt = None) -> None:
    """Show a tenant with its plan assignment history and discounts."""
    from billctl.services.tenants_views import tenant_details

    st = state(ctx)
    details = tenant_details(st.app, tenant_id)
    tenant, history, discounts = details.tenant, details.history, details.discounts
    out = st.output(output)
    doc = tenant_doc(tenant)
    doc["plans"] = [
        {
            "plan": a.plan_code,
            "effective_at": a.effective_at.isoformat(),
            "assigned_by": a.actor,
            "assigned_at": a.created_at.isoformat(),
        }
        for a in history
    ]
    doc["discounts"] = [
        {
            "id": d.id,
            "kind": d.kind,
            "value": d.value,
            "from": d.valid_from,
            "until": d.valid_until,
            "description": d.description,
        }
        for d in discounts
    ]
    if out.fmt == "json":
        out.json(doc)
        return
    if out.fmt == "csv":
        out.csv(list(tenant_doc(tenant)), [list(tenant_doc(tenant).values())])
        return
    out.table(["field", "value"], [(k, v) for k, v in tenant_doc(tenant).items()], title=f"tenant {tenant.key}")
    out.table(
        ["plan", "effective from", "assigned by", "assigned at"],
        [(a.plan_code, a.effective_at.isoformat(), a.actor, a.created_at.strftime("%Y-%m-%d %H:%M")) for a in history],
        title="plan history",
    )
    if discounts:
        out.table(
            ["id", "kind", "value", "from", "until", "description"],
            [(d.id, d.kind, d.value, d.valid_from, d.valid_until or "open", d.description) for d in discounts],
            title="discounts",
        )


@app.command("assign-plan")
def assign_plan(
    ctx: typer.Context,
    tenant_id: str,
    plan: str,
    effective: Annotated[
        str | None,
        typer.Option(
            "--effective",
            help="YYYY-MM-DD in the tenant's time zone. Default: next period start (current period for a first plan).",
        ),
    ] = None,
) -> None:
    """Put a tenant on a plan. A date inside a period prices that period in segments."""
    st = state(ctx)
    row = svc.assign_plan(st.app, tenant_id, plan, effective)
    st.out.success(f"tenant {tenant_id} is on plan {plan} from {row.effective_at.isoformat()}")
