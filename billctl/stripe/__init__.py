"""The Stripe edge of billctl: key handling (``keys``), a client-side throttle and a small adapter over
the official ``stripe`` SDK (``client``: retries, backoff, dry run). Pure rules: ``mapping`` (customers,
invoices, payment status, reconciliation), ``credit_notes``, ``idempotency`` (every idempotency key)
and ``status`` (Stripe's invoice statuses). The orchestration is in ``billctl.services.stripe_sync``."""
