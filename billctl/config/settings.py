"""The settings table: every setting declared once, with its default, parser and help.

``config.example.toml``, ``billctl config init``, ``billctl config show``, the typed sections
(``billctl.config.sections``) and the reference documentation are all derived from ``SETTINGS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billctl.config import parsers as p

ENV_PREFIX = "BILLCTL_"


@dataclass(frozen=True)
class Setting:
    key: str  # "section.name"
    default: Any
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    in_toml: bool = True  # secrets are never read from the TOML file

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database.url",
        "sqlite:///billctl.db",
        p.short_text(2000),
        "SQLAlchemy URL. SQLite file (embedded default) or postgresql+psycopg://user@host/db. "
        "Put no password here: use BILLCTL_DATABASE_PASSWORD or database.password_file.",
    ),
    Setting(
        "database.password_file",
        "",
        p.short_text(4096),
        "Path of a file holding the database password (e.g. a mounted Kubernetes Secret).",
    ),
    Setting(
        "database.password",
        "",
        p.string,
        "Database password. Environment only (BILLCTL_DATABASE_PASSWORD), never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting(
        "billing.timezone",
        "UTC",
        p.timezone,
        "Default billing time zone (IANA) for new tenants; periods are calendar months in it.",
    ),
    Setting("billing.currency", "USD", p.currency, "Default currency for new tenants (ISO 4217)."),
    Setting(
        "billing.invoice_number_pattern",
        "INV-{period}-{seq:06d}",
        p.number_pattern,
        "Invoice number pattern; placeholders {period} {year} {month} {seq} (a global sequence).",
    ),
    Setting(
        "billing.credit_note_number_pattern",
        "CN-{seq:06d}",
        p.number_pattern,
        "Credit note number pattern; placeholders {period} {year} {month} (the month it is issued) {seq} "
        "(a sequence of its own).",
    ),
    Setting(
        "billing.adjustment_lookback_months",
        12,
        p.int_range(1, 24),
        "How many finalized months back late usage is looked for and billed as adjustments.",
    ),
    Setting(
        "usage.bucket_seconds",
        300,
        p.int_in(60, 300, 900, 3600),
        "Usage bucket size in seconds (60, 300, 900 or 3600). A size that would straddle a month "
        "boundary in some tenant's time zone (3600 with Asia/Kolkata) is refused.",
    ),
    Setting(
        "usage.dedupe_days",
        45,
        p.int_range(1, 3650),
        "Dedupe window: a repeated (tenant, event_id) is recognised for this many days after it was "
        "first counted (16 bytes per event id in the database; `billctl usage prune` drops older ids).",
    ),
    Setting(
        "usage.max_future_seconds",
        300,
        p.int_range(1, 7 * 86400),
        "Events stamped further than this in the future are rejected (dead-lettered, or reported by line "
        "on import), not counted: a producer's clock may run this much ahead.",
    ),
    Setting(
        "usage.max_past_days",
        400,
        p.int_range(1, 3650),
        "Events stamped more than this many days ago are rejected like future ones. The default covers "
        "backfills of the last months and billing.adjustment_lookback_months (12) with room to spare.",
    ),
    Setting(
        "redis.url",
        "redis://127.0.0.1:6379/0",
        p.short_text(2000),
        "Redis URL of the usage stream. Put no password here: use BILLCTL_REDIS_PASSWORD.",
    ),
    Setting(
        "redis.password",
        "",
        p.string,
        "Redis password. Environment only (BILLCTL_REDIS_PASSWORD), never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting("stream.name", "api_stream", p.short_text(150), "Redis Stream the gateways append usage events to."),
    Setting(
        "stream.shards",
        0,
        p.int_range(0, 1024),
        "0: one stream named stream.name; N: N shards named <stream.name>:0 ... <stream.name>:N-1.",
    ),
    Setting("stream.group", "billctl", p.short_text(100), "Consumer group the aggregators share."),
    Setting(
        "stream.consumer",
        "",
        p.short_text(200),
        "This process's consumer name in the group (default: <hostname>-<pid>).",
    ),
    Setting("stream.read_count", 1000, p.int_range(1, 100_000), "Entries per XREADGROUP call."),
    Setting(
        "stream.batch_events",
        100000,
        p.int_range(1, 10_000_000),
        "Entries per database transaction (larger: faster; memory grows with it, not the stream).",
    ),
    Setting(
        "stream.flush_ms",
        1000,
        p.int_range(1, 3_600_000),
        "Commit at least this often (and at every full batch): a quiet stream's usage reaches the "
        "database within about this long.",
    ),
    Setting(
        "stream.block_ms", 2000, p.int_range(1, 3_600_000), "With --follow: how long one read waits for new entries."
    ),
    Setting(
        "stream.claim_idle_ms",
        60000,
        p.int_range(1, 86_400_000),
        "Entries left pending this long by another (dead) consumer are claimed and counted here "
        "(never a consumer's own; at least 10 x stream.flush_ms).",
    ),
    Setting(
        "stream.retention_seconds",
        0,
        p.int_range(0, 3650 * 86400),
        "Keep counted entries this long before trimming them (0: trim as soon as every group has them).",
    ),
    Setting(
        "stream.dead_letter",
        "",
        p.short_text(200),
        "Dead-letter stream for entries that cannot be counted (default: <stream.name>:dead).",
    ),
    Setting(
        "gateway.tenant_field",
        "x-tenant-id",
        p.short_text(200),
        "Gateway access logs: the field (a request header logged by Envoy/Istio) holding the tenant id.",
    ),
    Setting(
        "gateway.billable_statuses",
        "200-299",
        p.status_ranges,
        "Gateway access logs: which response codes bill, e.g. '200-299' or '200-399,429'.",
    ),
    Setting(
        "monthly.drain_stream",
        True,
        p.boolean,
        "run-monthly drains the Redis usage stream before finalizing (false: usage comes from files only).",
    ),
    Setting(
        "monthly.hold_above",
        "",
        p.amounts,
        "Invoices above this total are finalized but held back from Stripe until released, per "
        "currency: 'USD=10000,EUR=9000,KRW=15000000' ('' = no limit).",
    ),
    Setting(
        "monthly.hold_multiple",
        "5",
        p.multiple,
        "Hold an invoice whose total exceeds this multiple of the tenant's previous invoice (0 = never); "
        "a stolen API key looks like this.",
    ),
    Setting(
        "monthly.zero_usage_min_previous",
        1000,
        p.int_range(0, 10**15),
        "Report tenants with no usage this period that had at least this many units the period before.",
    ),
    Setting(
        "monthly.lock_stale_seconds",
        900,
        p.int_range(1, 7 * 86400),
        "A run lock not renewed for this long (its run was killed) may be taken over by the next run.",
    ),
    Setting(
        "monthly.lock_group",
        "",
        p.short_text(200),
        "Runs of one group (e.g. the pods of one Kubernetes Job, whose retries start only after the failed "
        "pod stopped) take over each other's lock at once instead of waiting for it to go stale.",
    ),
    Setting(
        "monthly.pushgateway_url",
        "",
        p.short_text(2000),
        "Prometheus Pushgateway base URL for run metrics, e.g. http://pushgateway:9091 ('' = off).",
    ),
    Setting("output.format", "table", p.output_format, "Default output format: table, json or csv."),
    Setting(
        "stripe.api_key",
        "",
        p.string,
        "Stripe secret or restricted key (sk_test_, sk_live_, rk_...). Environment only: "
        "BILLCTL_STRIPE_API_KEY or STRIPE_API_KEY, or stripe.api_key_file; never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting(
        "stripe.api_key_file",
        "",
        p.short_text(4096),
        "Path of a file holding the Stripe key (e.g. a mounted Kubernetes Secret).",
    ),
    Setting(
        "stripe.api_base",
        "https://api.stripe.com",
        p.http_base,
        "Stripe API base address; point it at a Stripe-compatible test server to rehearse. "
        "A live key (sk_live_) is refused unless this is Stripe's own address.",
    ),
    Setting(
        "stripe.max_requests_per_second",
        20.0,
        p.stripe_rate,
        "Client-side throttle: never more Stripe requests than this per second "
        "(Stripe allows about 25/s in test mode and 100/s in live mode).",
    ),
    Setting(
        "stripe.max_retries",
        5,
        p.int_range(1, 100),
        "Retries of one Stripe request after 429, 409, 5xx or a dropped connection (with backoff).",
    ),
    Setting(
        "stripe.collection_method",
        "charge_automatically",
        p.collection_method,
        "charge_automatically (Stripe charges the customer's default payment method) or send_invoice "
        "(Stripe emails the invoice, payable within stripe.days_until_due days).",
    ),
    Setting("stripe.days_until_due", 30, p.int_range(1, 3650), "Payment terms for send_invoice invoices, in days."),
    Setting(
        "stripe.webhook_secret",
        "",
        p.string,
        "Webhook signing secret (whsec_...). Environment only: BILLCTL_STRIPE_WEBHOOK_SECRET or "
        "STRIPE_WEBHOOK_SECRET, or stripe.webhook_secret_file.",
        secret=True,
        in_toml=False,
    ),
    Setting("stripe.webhook_secret_file", "", p.short_text(4096), "Path of a file holding the webhook signing secret."),
    # prepaid credits (issue 13)
    Setting(
        "credits.alert_below",
        "",
        p.amounts,
        "`credits alerts` lists a tenant whose available credits fall below this, per currency: "
        "'USD=50,JPY=5000' ('' = only tenants projected to run out before their period ends).",
    ),
    Setting(
        "credits.burn_window_days",
        90,
        p.int_range(1, 3650),
        "Days of draws the credit burn rate (and so the projected run-out date) is computed over.",
    ),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
