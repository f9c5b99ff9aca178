"""The Stripe edge of billctl: key handling, a client-side throttle and a small adapter over the
official ``stripe`` SDK (retries, backoff, dry run). Pure mapping and reconciliation rules live in
``billctl.stripe.mapping``; the orchestration is in ``billctl.services.stripe_sync``."""
