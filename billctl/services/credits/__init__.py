"""Prepaid credits (issue 13): grants, their ledger, balances, burn-down and alerts, expiry at a
period close, draws at finalize and their return on a void or credit note, top-ups.

The maths is in ``billctl.core.credits``; each function here is one unit of work, or a step that
runs inside the caller's (``plan_draws``, ``record_draws``, ``return_credits``, ``purchase_paid``)."""

from billctl.services.credits.alerts import AlertsReport, TenantBurn, credit_alerts
from billctl.services.credits.draws import PlannedDraws, plan_draws, record_draws, return_credits
from billctl.services.credits.expiry import Expired, ExpiryReport, expire_credits
from billctl.services.credits.grants import GrantRequest, GrantResult, grant_credits, record_grant
from billctl.services.credits.purchases import create_purchase, purchase_paid
from billctl.services.credits.views import Balance, Ledger, LedgerLine, balance_of, balances, ledger

__all__ = [
    "AlertsReport",
    "Balance",
    "Expired",
    "ExpiryReport",
    "GrantRequest",
    "GrantResult",
    "Ledger",
    "LedgerLine",
    "PlannedDraws",
    "TenantBurn",
    "balance_of",
    "balances",
    "create_purchase",
    "credit_alerts",
    "expire_credits",
    "grant_credits",
    "ledger",
    "plan_draws",
    "purchase_paid",
    "record_draws",
    "record_grant",
    "return_credits",
]
