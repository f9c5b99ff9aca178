"""Typed access to the settings, one frozen dataclass per section of ``SETTINGS``::

    app.config.stream.batch_events   # int
    app.config.usage.max_past_days   # int

Each field is a setting of the table (``stream.batch_events`` is ``StreamSettings.batch_events``) with
the type its parser returns; tests/unit/test_config_sections.py checks that the two agree exactly.
Secret fields are left out of ``repr`` so a section can be logged without leaking them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    password_file: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class BillingSettings:
    timezone: str
    currency: str
    invoice_number_pattern: str
    credit_note_number_pattern: str
    adjustment_lookback_months: int


@dataclass(frozen=True)
class UsageSettings:
    bucket_seconds: int
    dedupe_days: int
    max_future_seconds: int
    max_past_days: int


@dataclass(frozen=True)
class RedisSettings:
    url: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class StreamSettings:
    name: str
    shards: int
    group: str
    consumer: str
    read_count: int
    batch_events: int
    flush_ms: int
    block_ms: int
    claim_idle_ms: int
    retention_seconds: int
    dead_letter: str


@dataclass(frozen=True)
class GatewaySettings:
    tenant_field: str
    billable_statuses: str


@dataclass(frozen=True)
class MonthlySettings:
    drain_stream: bool
    hold_above: str
    hold_multiple: str
    zero_usage_min_previous: int
    lock_stale_seconds: int
    lock_group: str
    pushgateway_url: str


@dataclass(frozen=True)
class OutputSettings:
    format: str


@dataclass(frozen=True)
class StripeSettings:
    api_key: str = field(repr=False)
    api_key_file: str
    api_base: str
    max_requests_per_second: float
    max_retries: int
    collection_method: str
    days_until_due: int
    webhook_secret: str = field(repr=False)
    webhook_secret_file: str


@dataclass(frozen=True)
class CreditsSettings:
    alert_below: str
    burn_window_days: int


# section name in the table -> its dataclass (the unit test compares these with SETTINGS)
SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "billing": BillingSettings,
    "usage": UsageSettings,
    "redis": RedisSettings,
    "stream": StreamSettings,
    "gateway": GatewaySettings,
    "monthly": MonthlySettings,
    "output": OutputSettings,
    "stripe": StripeSettings,
    "credits": CreditsSettings,
}


def of_section(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The resolved values (keyed "section.key") of section ``name``, keyed by field name."""
    prefix = name + "."
    return {key[len(prefix) :]: value for key, value in values.items() if key.startswith(prefix)}
