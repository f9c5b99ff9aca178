"""billctl plans create|update|list|show|archive"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import tomli_w
import typer

from billctl.cli.common import MAX_ID, OutputOpt, YesOpt, confirm, lazy_module, state
from billctl.core.money import format_amount

if TYPE_CHECKING:
    from billctl.services import plans as svc
else:
    svc = lazy_module("billctl.services.plans")


app = typer.Typer(help="Price plans (TOML files), versioned once invoices use them.", no_args_is_help=True)
FileOpt = Annotated[str, typer.Option("--file", "-f", help="Plan TOML file (- for stdin).")]


def _summary(row) -> dict:
    d = row.definition
    price = d["price"]
    return {
        "name": row.code,
        "version": row.version,
        "currency": row.currency,
        "model": price["model"],
        "base_fee": d.get("base_fee", "0"),
        "included_units": d.get("included_units", 0),
        "minimum": d.get("minimum"),
        "archived": row.archived,
        "used": row.used,
        "description": row.description,
    }


@app.command("create")
def create(ctx: typer.Context, file: FileOpt) -> None:
    """Create a plan from a TOML file (every problem in it is reported at once)."""
    st = state(ctx)
    row = svc.create_plan(st.app, svc.read_plan_file(file))
    st.out.success(f"created plan {row.code} v{row.version} ({row.currency}, {row.definition['price']['model']})")


@app.command("update")
def update(ctx: typer.Context, file: FileOpt) -> None:
    """Edit a plan. If invoices were priced with it, this makes a new version; they keep theirs."""
    st = state(ctx)
    row, outcome = svc.update_plan(st.app, svc.read_plan_file(file))
    messages = {
        "unchanged": f"plan {row.code} v{row.version} unchanged",
        "updated": f"plan {row.code} v{row.version} updated (no invoice used it yet)",
        "new version": f"plan {row.code} is now v{row.version}; earlier invoices keep v{row.version - 1}",
    }
    st.out.success(messages[outcome])


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include archived plans.")] = False,
    output: OutputOpt = None,
) -> None:
    """List plans (latest version of each)."""
    st = state(ctx)
    rows = svc.list_plans(st.app, include_archived=all_)
    docs = [_summary(r) for r in rows]
    st.output(output).rows(
        ["name", "version", "currency", "model", "base_fee", "included_units", "minimum", "archived"],
        [
            (
                d["name"],
                d["version"],
                d["currency"],
                d["model"],
                d["base_fee"],
                f"{d['included_units']:,}",
                d["minimum"] or "",
                "yes" if d["archived"] else "",
            )
            for d in docs
        ],
        documents=docs,
        right=["version", "base_fee", "included_units", "minimum"],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: str,
    version: Annotated[int | None, typer.Option("--version", min=1, max=MAX_ID, help="A specific version.")] = None,
    output: OutputOpt = None,
) -> None:
    """Show a plan: its definition (as TOML) and its versions."""
    from billctl.services.plans_views import plan_with_versions

    st = state(ctx)
    row, history = plan_with_versions(st.app, name, version)
    out = st.output(output)
    if out.fmt == "json":
        out.json(
            {
                **_summary(row),
                "definition": row.definition,
                "versions": [
                    {"version": v.version, "created_at": v.created_at.isoformat(), "used": v.used} for v in history
                ],
            }
        )
        return
    if out.fmt == "csv":
        summary = _summary(row)
        out.csv(list(summary), [list(summary.values())])
        return
    out.info(
        f"[bold]plan {row.code}[/bold] v{row.version} ({row.currency})"
        + (" [yellow]archived[/yellow]" if row.archived else ""),
        markup=True,
    )
    out.console.print(tomli_w.dumps(row.definition), markup=False)
    _tiers(out, row)
    out.table(
        ["version", "created", "used by invoices"],
        [(v.version, v.created_at.strftime("%Y-%m-%d %H:%M"), "yes" if v.used else "no") for v in history],
        title="versions",
    )


def _tiers(out, row) -> None:
    price = row.definition["price"]
    if price["model"] not in ("graduated", "volume"):
        return
    rows, low = [], 1
    for tier in price["tiers"]:
        high = tier.get("up_to")
        rows.append(
            (
                f"{low:,}",
                f"{high:,}" if high else "∞",
                tier["unit_price"],
                format_amount(__import__("decimal").Decimal(tier.get("flat_fee", "0")), row.currency),
            )
        )
        low = (high or 0) + 1
    out.table(
        ["from", "up to", "unit price", "flat fee"],
        rows,
        title=f"{price['model']} tiers",
        right=["from", "up to", "unit price", "flat fee"],
    )


@app.command("archive")
def archive(ctx: typer.Context, name: str, yes: YesOpt = False) -> None:
    """Archive a plan: it can no longer be assigned; tenants already on it keep being billed."""
    st = state(ctx)
    confirm(st.out, f"Archive plan {name}?", yes)
    svc.archive_plan(st.app, name)
    st.out.success(f"plan {name} archived")
