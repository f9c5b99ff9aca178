"""billctl discounts add|list|remove"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from billctl.cli.common import MAX_ID, OutputOpt, YesOpt, confirm, lazy_module, state

if TYPE_CHECKING:
    from billctl.services import tenants as svc
else:
    svc = lazy_module("billctl.services.tenants")


app = typer.Typer(
    help="Per-tenant discounts: percentage or fixed amount, with a validity window.", no_args_is_help=True
)


@app.command("add")
def add(
    ctx: typer.Context,
    tenant_id: str,
    kind: Annotated[str, typer.Option("--kind", help="percent or fixed.")],
    value: Annotated[str, typer.Option("--value", help="Percent (10 = 10 %) or amount in the tenant's currency.")],
    valid_from: Annotated[
        str | None,
        typer.Option("--from", help="First day it applies, YYYY-MM-DD (default: today in the tenant's time zone)."),
    ] = None,
    valid_until: Annotated[
        str | None, typer.Option("--until", help="Last day it applies (inclusive); open if omitted.")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Shown on the invoice line.")] = "",
) -> None:
    """Add a discount. It applies to every period that overlaps [--from, --until]."""
    st = state(ctx)
    row = svc.add_discount(st.app, tenant_id, kind, value, valid_from, valid_until, description)
    st.out.success(
        f"discount {row.id} added to {tenant_id}: {row.kind} {row.value} from {row.valid_from}"
        f" until {row.valid_until or 'further notice'}"
    )


@app.command("list")
def list_(ctx: typer.Context, tenant_id: str, output: OutputOpt = None) -> None:
    """List a tenant's discounts."""
    from billctl.services.tenants_views import tenant_discounts

    st = state(ctx)
    rows = tenant_discounts(st.app, tenant_id)
    st.output(output).rows(
        ["id", "kind", "value", "from", "until", "description"],
        [(d.id, d.kind, d.value, d.valid_from, d.valid_until, d.description) for d in rows],
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    tenant_id: str,
    discount_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="The discount's id (discounts list).")],
    yes: YesOpt = False,
) -> None:
    """Remove a discount (finalized invoices keep what they were priced with)."""
    st = state(ctx)
    confirm(st.out, f"Remove discount {discount_id} of {tenant_id}?", yes)
    svc.remove_discount(st.app, tenant_id, discount_id)
    st.out.success(f"discount {discount_id} removed")
