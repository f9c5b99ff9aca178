"""billctl credits purchase: a top-up paid through a one-off Stripe invoice (issue 13)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, state
from billctl.core.credits import PRIORITY_DEFAULT
from billctl.core.money import format_amount, money_json, to_minor
from billctl.errors import PartialFailure


def purchase_doc(result: Any) -> dict[str, Any]:
    o = result.outcome
    cur = result.currency
    return {
        "tenant": result.tenant,
        "dry_run": result.dry_run,
        "purchase": {
            "id": None if result.dry_run else result.purchase_id,
            "amount": money_json(to_minor(result.amount, cur), cur),
            "reason": result.reason,
            "priority": result.priority,
            "expires_at": result.expires_at.isoformat() if result.expires_at else None,
            "status": result.status,
        },
        "stripe": {
            "action": o.action,
            "invoice": o.stripe_id,
            "status": o.status,
            "number": o.stripe_number,
            "hosted_url": o.hosted_url,
            "amount_due": money_json(o.amount_due_minor, cur) if o.amount_due_minor is not None else None,
            "note": o.note,
        },
        "grant": result.grant_id,
    }


def register(app: typer.Typer) -> None:
    @app.command("purchase")
    def purchase(
        ctx: typer.Context,
        tenant_id: Annotated[str, typer.Argument(help="The tenant buying credits.")],
        amount: Annotated[str, typer.Option("--amount", help="Amount in the tenant's currency, e.g. 500.00.")],
        reason: Annotated[str, typer.Option("--reason", help="Why: kept in the audit log and on the grant.")],
        expires: Annotated[
            str | None,
            typer.Option(
                "--expires",
                help="Day the credits expire, YYYY-MM-DD: unusable from that day's start in the tenant's time "
                "zone. Default: never.",
            ),
        ] = None,
        priority: Annotated[
            int, typer.Option("--priority", help="0-100: among grants expiring together, lower numbers drawn first.")
        ] = PRIORITY_DEFAULT,
        dry_run: DryRunOpt = False,
        output: OutputOpt = None,
    ) -> None:
        """Sell prepaid credits: records a pending purchase and issues a one-off Stripe invoice for it
        (untaxed, one item), pushed as safely as invoices are. The credits are granted when Stripe
        reports the invoice paid (at once when Stripe charges the card now; else through `stripe
        sync-status` or the webhook receiver), exactly once. Needs a Stripe key (exit 4 without one);
        credits paid outside Stripe are recorded with `credits grant --kind purchased`. A push that
        stopped is completed by `billctl stripe push`."""
        from billctl.services.credits import purchase_flow as svc

        st = state(ctx)
        request = svc.PurchaseRequest(amount=amount, reason=reason, expires=expires, priority=priority)
        result = svc.purchase_credits(st.app, tenant_id, request, dry_run=dry_run)
        out = st.output(output)
        doc = purchase_doc(result)
        o = result.outcome
        if out.fmt == "json":
            out.json(doc)
        else:
            money = f"{result.currency} {format_amount(result.amount, result.currency)}"
            if dry_run:
                out.success(f"{result.tenant}: would issue a Stripe invoice for {money} of credits; nothing written")
            elif o.failed:
                out.warn(f"{result.tenant}: credit purchase {result.purchase_id} of {money} recorded, push failed")
            else:
                granted = (
                    f"; paid, granted (grant {result.grant_id})"
                    if result.grant_id
                    else (f"; Stripe invoice {o.stripe_id} is {o.status}: credits granted once Stripe reports it paid")
                )
                out.success(f"{result.tenant}: credit purchase {result.purchase_id} of {money}{granted}")
                if o.hosted_url:
                    out.info(f"invoice: {o.hosted_url}")
        if o.failed:
            raise PartialFailure(
                f"the Stripe invoice of credit purchase {result.purchase_id} was not completed: {o.note}",
                hint="the purchase is recorded (pending); fix the cause and run `billctl stripe push` to complete it",
            )
