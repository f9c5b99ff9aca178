"""billctl audit list"""

from __future__ import annotations

from typing import Annotated

import typer

from billctl.cli.common import OutputOpt, state

app = typer.Typer(help="The audit trail: every state change, who made it and why.", no_args_is_help=True)


@app.command("list")
def audit_list(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option("--action", help="e.g. invoice.finalize, invoice.void")] = None,
    object_id: Annotated[str | None, typer.Option("--object", help="An invoice number, tenant key, plan...")] = None,
    actor: Annotated[str | None, typer.Option("--actor-is", help="Only this actor.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="Newest first.")] = 50,
    output: OutputOpt = None,
) -> None:
    """Recorded state changes (finalize, void, hold, release, push, payment status, plan and tenant
    changes), newest first."""
    from billctl.services.audit_views import audit_entries

    st = state(ctx)
    out = st.output(output)
    docs = audit_entries(st.app, action=action, object_id=object_id, actor=actor, limit=limit)
    out.rows(
        ["at", "actor", "action", "object", "reason", "detail"],
        [
            (
                d["at"][:19].replace("T", " "),
                d["actor"],
                d["action"],
                f"{d['object_type']} {d['object']}",
                d["reason"],
                " ".join(f"{k}={v}" for k, v in (d["detail"] or {}).items()),
            )
            for d in docs
        ],
        documents=docs,
    )
