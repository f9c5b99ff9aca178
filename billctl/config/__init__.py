"""Settings: flag > environment (``BILLCTL_*``) > TOML file > default.

Every setting is declared once in ``SETTINGS`` (``billctl.config.settings``); ``config.example.toml``,
``billctl config init``, ``billctl config show`` and the typed sections (``config.stream.batch_events``,
``billctl.config.sections``) are all derived from it. Secrets never come from the TOML file and are
redacted wherever shown.

- ``parsers``: the value parsers (typed value or ``ValueError``)
- ``settings``: the ``SETTINGS`` table
- ``sections``: one frozen dataclass per section
- ``loader``: ``load_config`` and ``Config``
- ``starter``: the starter TOML
"""

from billctl.config.loader import (
    DATABASE_URL_HINT,
    DEFAULT_CONFIG_FILE,
    SUPPORTED_DATABASES,
    Config,
    load_config,
    redact_url,
)
from billctl.config.sections import (
    BillingSettings,
    DatabaseSettings,
    GatewaySettings,
    MonthlySettings,
    OutputSettings,
    RedisSettings,
    StreamSettings,
    StripeSettings,
    UsageSettings,
)
from billctl.config.settings import BY_KEY, ENV_PREFIX, SETTINGS, Setting
from billctl.config.starter import starter_toml

__all__ = [
    "BY_KEY",
    "DATABASE_URL_HINT",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "SETTINGS",
    "SUPPORTED_DATABASES",
    "BillingSettings",
    "Config",
    "DatabaseSettings",
    "GatewaySettings",
    "MonthlySettings",
    "OutputSettings",
    "RedisSettings",
    "Setting",
    "StreamSettings",
    "StripeSettings",
    "UsageSettings",
    "load_config",
    "redact_url",
    "starter_toml",
]
