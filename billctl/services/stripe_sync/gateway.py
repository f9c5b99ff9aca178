"""What every Stripe use case shares: the gateway from the settings, the local store of Stripe ids and
state (one small committed transaction per write, none in a dry run), and amounts read back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session

from billctl.core.money import MoneyError, minor_from_stripe
from billctl.db.models import Invoice
from billctl.db.repositories import stripe as records
from billctl.errors import NoStripeKey, StripeFailure
from billctl.services.context import App
from billctl.services.stripe_sync.outcomes import Outcome
from billctl.stripe import mapping as m
from billctl.stripe.client import Gateway
from billctl.stripe.keys import stripe_settings
from billctl.stripe.status import StripeStatus


def gateway(app: App, *, dry_run: bool = False, **kwargs: Any) -> Gateway:
    """A gateway from the configuration (raises ConfigError, exit 4, on a missing or unsafe key)."""
    return Gateway(stripe_settings(app.config), dry_run=dry_run, **kwargs)


def optional_gateway(app: App, *, dry_run: bool = False, **kwargs: Any) -> Gateway | None:
    """The gateway, or None when no key is configured at all. A bad key still raises ConfigError:
    it is a configuration error, not a reason to skip Stripe."""
    try:
        return gateway(app, dry_run=dry_run, **kwargs)
    except NoStripeKey:
        return None


@contextmanager
def reading(app: App) -> Iterator[Session]:
    """A read-only unit of work whose records stay readable (detached) after it ends."""
    with app.uow(readonly=True) as uow:  # the unit of work detaches what was loaded before its rollback
        yield uow.session


class StripeStore:
    """Local writes of the Stripe flow: each its own committed unit of work; none in a dry run."""

    def __init__(self, app: App, dry_run: bool) -> None:
        self.app = app
        self.dry_run = dry_run

    @contextmanager
    def tx(self) -> Iterator[Session | None]:
        """The session of a new unit of work, or None in a dry run (write nothing then)."""
        if self.dry_run:
            yield None
            return
        with self.app.uow() as uow:
            yield uow.session

    def invoice(self, invoice_id: int | None, **values: Any) -> None:
        with self.tx() as s:
            if s is not None and invoice_id is not None:
                records.update_invoice(s, invoice_id, **values)

    def line(self, line_id: int | None, item_id: str) -> None:
        with self.tx() as s:
            if s is not None and line_id is not None:
                records.set_item_id(s, line_id, item_id)


def local_minor(stripe_amount: int | None, currency: str | None) -> int | None:
    """An amount read from Stripe in billctl's minor units (what ``*_minor`` columns and local
    amounts hold: UGX ``500`` is 5); None when Stripe gave none (or one billctl cannot hold)."""
    if stripe_amount is None or not currency:
        return None
    try:
        return minor_from_stripe(stripe_amount, currency)
    except MoneyError:
        return None


def state_values(remote: dict[str, Any]) -> dict[str, Any]:
    """The invoice columns that record a Stripe invoice's state (status, number, amounts ...)."""
    state = m.payment_state(remote)
    transitions = remote.get("status_transitions") or {}
    at = max([v for v in transitions.values() if isinstance(v, int)] or [0]) or None
    return {
        "stripe_status": state.status,
        "stripe_attempt_count": state.attempt_count,
        "stripe_next_payment_attempt": state.next_payment_attempt,
        "stripe_number": remote.get("number"),
        "stripe_hosted_url": remote.get("hosted_invoice_url"),
        "stripe_event_at": at,
        "stripe_amount_paid": local_minor(remote.get("amount_paid"), remote.get("currency")),
        "stripe_amount_remaining": local_minor(remote.get("amount_remaining"), remote.get("currency")),
    }


def retrieve_live(fetch: Callable[[str], dict[str, Any]], object_id: str) -> tuple[dict[str, Any] | None, bool]:
    """(the Stripe object, None when Stripe no longer has it; whether Stripe says it was deleted)."""
    try:
        remote = fetch(object_id)
    except StripeFailure as exc:
        if exc.status != 404:
            raise
        return None, False
    return (None, True) if remote.get("deleted") else (remote, False)


def find_remote(gw: Gateway, invoice: Invoice, customer_id: str, out: Outcome) -> dict[str, Any] | None:
    """The Stripe invoice an earlier run made for ``invoice``: by stored id, else by metadata."""
    return find_stripe_invoice(
        gw,
        customer_id,
        invoice.stripe_invoice_id,
        invoice.stripe_push_started_at is not None,
        lambda listed: m.match_invoices(listed, invoice.number),
        "this number",
        out,
    )


def find_stripe_invoice(
    gw: Gateway,
    customer_id: str,
    stored_id: str | None,
    started: bool,
    match: Callable[[Iterable[Mapping[str, Any]]], list[Mapping[str, Any]]],
    what: str,
    out: Outcome,
) -> dict[str, Any] | None:
    """The Stripe invoice an earlier run made for a local record (an invoice, a credits purchase): by
    its stored id, else, when a create may have run (``started``, or an id that is gone), among the
    customer's invoices by metadata (``match``): an earlier run may have created it and died before
    storing the id, or more than a day ago, when Stripe no longer remembers the idempotency key."""
    remote = retrieve_live(gw.retrieve_invoice, stored_id)[0] if stored_id else None
    if remote is None and (started or stored_id is not None):
        matches = match(gw.list_invoices(customer_id))
        live = [x for x in matches if x.get("status") != StripeStatus.VOID] or matches
        if live:
            remote = dict(live[0])
            if len(live) > 1:
                out.note += f"{len(live)} Stripe invoices carry {what} ({', '.join(x['id'] for x in live)}); "
    return remote
