"""Stripe keys and settings: where the key comes from, what kind it is, and never showing it.

The key is read from (first found) the ``stripe.api_key`` setting (``BILLCTL_STRIPE_API_KEY``,
environment only), ``STRIPE_API_KEY``, or the file named by ``stripe.api_key_file``. A live key is
refused unless ``stripe.api_base`` is Stripe's own address, so a rehearsal against a local server
can never leak a live key to it. ``billctl.errors.redact`` removes anything key-shaped from text we print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from billctl.config import Config
from billctl.errors import ConfigError, NoStripeKey

STRIPE_API_HOSTS = frozenset({"api.stripe.com"})
# The Stripe API version every request names (``Stripe-Version``), pinned so that a rebuilt image never
# silently talks a newer API. It is the version the pinned SDK (requirements.lock) speaks; upgrading
# the SDK is a deliberate change of both, and tests/integration/test_stripe_config.py fails until they agree.
API_VERSION = "2026-10-28.endive"
_VALID_KEY = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]{8,}")


@dataclass(frozen=True)
class StripeSettings:
    api_key: str = field(repr=False)
    api_base: str
    max_requests_per_second: float
    max_retries: int
    collection_method: str
    days_until_due: int
    key_source: str  # where the key came from (a name, never the value)

    @property
    def livemode(self) -> bool:
        return self.api_key.split("_")[1] == "live"

    @property
    def key_kind(self) -> str:
        kind = "restricted" if self.api_key.startswith("rk_") else "secret"
        return f"{'live' if self.livemode else 'test'} {kind} key"

    def __str__(self) -> str:  # never the key
        return f"Stripe at {self.api_base} with a {self.key_kind} from {self.key_source}"


def _read_file(path: str, setting: str) -> str:
    from billctl.files import read_text

    return read_text(path, setting, ConfigError).strip()


def resolve_api_key(config: Config, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(key, where it came from). Raises ConfigError (exit 4) naming the fix when there is none."""
    env = os.environ if env is None else env
    if config.stripe.api_key:
        return config.stripe.api_key.strip(), config.sources.get("stripe.api_key", "BILLCTL_STRIPE_API_KEY")
    if env.get("STRIPE_API_KEY"):
        return env["STRIPE_API_KEY"].strip(), "env STRIPE_API_KEY"
    if config.stripe.api_key_file:
        key = _read_file(config.stripe.api_key_file, "stripe.api_key_file")
        if not key:
            raise ConfigError(f"stripe.api_key_file: {config.stripe.api_key_file} is empty")
        return key, f"file {config.stripe.api_key_file}"
    raise NoStripeKey(
        "no Stripe API key configured",
        hint="set STRIPE_API_KEY (or BILLCTL_STRIPE_API_KEY), or stripe.api_key_file to a file holding it",
    )


def check_key(key: str, api_base: str, source: str) -> None:
    """Refuse keys that cannot work or must not be sent where api_base points."""
    if key.startswith("pk_"):
        raise ConfigError(
            f"the Stripe key from {source} is a publishable key (pk_...)",
            hint="billctl needs a secret (sk_...) or restricted (rk_...) key",
        )
    if not _VALID_KEY.fullmatch(key):
        raise ConfigError(
            f"the Stripe key from {source} is not a Stripe secret or restricted key",
            hint="expected sk_test_..., sk_live_..., rk_test_... or rk_live_...",
        )
    host = (urlsplit(api_base).hostname or "").lower()
    if key.split("_")[1] == "live" and host not in STRIPE_API_HOSTS:
        raise ConfigError(
            f"refusing to send a live Stripe key to {api_base}: stripe.api_base is not Stripe's API",
            hint="use a test key (sk_test_...) with a test server, or set stripe.api_base to https://api.stripe.com",
        )
    if host in STRIPE_API_HOSTS and not api_base.startswith("https://"):
        raise ConfigError("stripe.api_base must use https:// for Stripe's API")


def stripe_settings(config: Config, env: Mapping[str, str] | None = None) -> StripeSettings:
    key, source = resolve_api_key(config, env)
    check_key(key, config.stripe.api_base, source)
    return StripeSettings(
        api_key=key,
        api_base=config.stripe.api_base,
        max_requests_per_second=config.stripe.max_requests_per_second,
        max_retries=config.stripe.max_retries,
        collection_method=config.stripe.collection_method,
        days_until_due=config.stripe.days_until_due,
        key_source=source,
    )


def webhook_secret(config: Config, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    secret = config.stripe.webhook_secret or env.get("STRIPE_WEBHOOK_SECRET", "")
    if not secret and config.stripe.webhook_secret_file:
        secret = _read_file(config.stripe.webhook_secret_file, "stripe.webhook_secret_file")
    if not secret:
        raise ConfigError(
            "no Stripe webhook signing secret configured",
            hint="set STRIPE_WEBHOOK_SECRET (or BILLCTL_STRIPE_WEBHOOK_SECRET), or stripe.webhook_secret_file",
        )
    if not secret.startswith("whsec_"):
        raise ConfigError("the webhook signing secret does not look like one (whsec_...)")
    return secret.strip()
