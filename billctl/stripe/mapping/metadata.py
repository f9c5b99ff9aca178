"""The metadata keys billctl puts on Stripe objects: how an object is found again by what it is here."""

from __future__ import annotations

META_INVOICE = "billctl_invoice"  # on Stripe invoices and invoice items: the local invoice number
META_LINE = "billctl_line"  # on invoice items: the line's position on the local invoice
META_TENANT = "tenant_id"  # on customers (and invoices): the tenant key gateways send
META_CREDIT_GRANT = "billctl_credit_grant"  # on a credit line's invoice item: the grant it draws on
META_CREDIT_PURCHASE = "billctl_credit_purchase"  # on a credits purchase's invoice and item: the purchase id
