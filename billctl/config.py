"""Settings: flag > environment (``BILLCTL_*``) > TOML file > default.

Every setting is declared once in ``SETTINGS``; ``config.example.toml``,
``billctl config init`` and ``billctl config show`` are all derived from it.
Secrets never come from the TOML file and are redacted wherever shown.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billctl.core.bounds import is_utf8, quote
from billctl.errors import ConfigError
from billctl.files import read_text

ENV_PREFIX = "BILLCTL_"
DEFAULT_CONFIG_FILE = "billctl.toml"


def _int_in(*allowed: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _int(value)
        if number not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return number

    return parse


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,30}", value.strip()):
        return int(value)
    raise ValueError("must be an integer")


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    """An integer in [low, high]: every count, size and duration has a sane upper bound (a
    duration of 10^20 seconds would overflow the date arithmetic that uses it)."""

    def parse(value: Any) -> int:
        number = _int(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low:,} and {high:,}")
        return number

    return parse


def _text(max_len: int) -> Callable[[Any], str]:
    """A string of at most ``max_len`` characters without control characters."""

    def parse(value: Any) -> str:
        text = _str(value)
        if len(text) > max_len:
            raise ValueError(f"{len(text):,} characters is too long (at most {max_len})")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise ValueError("must not contain control characters")
        return text

    return parse


def _status_ranges(value: Any) -> str:
    text = _str(value).replace(" ", "")
    for part in text.split(","):
        if not re.fullmatch(r"[1-5]\d\d(-[1-5]\d\d)?", part):
            raise ValueError(f"{part!r} is not a status code or range such as 200-299")
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            raise ValueError(f"range {part!r} is empty")
    return text


def _multiple(value: Any) -> str:
    """A non-negative multiple, at most 1,000, at most 4 decimal places (a decimal string)."""
    from decimal import Decimal, InvalidOperation

    from billctl.core.bounds import decimals, quote

    if isinstance(value, float):
        raise ValueError("write it as a string, e.g. \"5\" (floats are inexact)")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a number written as a string, e.g. \"5\"")
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{quote(text)} is not a number") from None
    if not number.is_finite() or not 0 <= number <= 1000 or decimals(number) > 4:
        raise ValueError("must be a number from 0 to 1000 with at most 4 decimal places")
    return text


def _amounts(value: Any) -> str:
    """'USD=10000,EUR=9000': a money amount per currency, each within the bounds of a plan amount."""
    from decimal import Decimal, InvalidOperation

    from billctl.core.bounds import MAX_AMOUNT_MINOR, minor_limit, quote
    from billctl.core.money import exponent, fits_minor_unit, is_known_currency

    text = _str(value).replace(" ", "")
    for part in filter(None, text.split(",")):
        code, sep, amount = part.partition("=")
        if not sep or not is_known_currency(code.upper()):
            raise ValueError(f"{quote(part)}: write CURRENCY=AMOUNT, e.g. USD=10000")
        try:
            number = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"{quote(part)}: {quote(amount)} is not an amount") from None
        limit = minor_limit(MAX_AMOUNT_MINOR, exponent(code))
        if not number.is_finite() or not 0 < number <= limit:
            raise ValueError(f"{quote(part)}: the amount must be above 0 and at most {limit:,}")
        if not fits_minor_unit(number, code):
            raise ValueError(f"{quote(part)}: {amount} is finer than {code.upper()} allows")
    return text


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("must be true or false")


def _timezone(value: Any) -> str:
    from billctl.core.periods import PeriodError, validate_timezone

    try:
        return validate_timezone(_str(value))
    except PeriodError as exc:
        raise ValueError(str(exc)) from None


def _currency(value: Any) -> str:
    from billctl.core.money import is_known_currency

    code = _str(value).upper()
    if not is_known_currency(code):
        raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as USD")
    return code


def _number_pattern(value: Any) -> str:
    pattern = _str(value)
    try:
        longest = pattern.format(period="2026-10", seq=10**12, year=2026, month="10")
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        hint = "placeholders are {period}, {year}, {month}, {seq}"
        raise ValueError(f"invalid pattern ({str(exc)[:80]}); {hint}") from None
    if "{seq" not in pattern:
        raise ValueError("must contain {seq} (e.g. {seq:06d}) so numbers are unique")
    if len(longest) > 64:  # invoice.number is 64 characters
        raise ValueError(f"gives numbers of {len(longest)} characters; invoice numbers hold at most 64")
    return pattern


def _output(value: Any) -> str:
    text = _str(value)
    if text not in {"table", "json", "csv"}:
        raise ValueError("must be table, json or csv")
    return text


def _stripe_rate(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of requests per second") from None
    if not 0 < rate <= 1000:
        raise ValueError("must be above 0 and at most 1000")
    return rate


def _collection_method(value: Any) -> str:
    text = _str(value)
    if text not in {"charge_automatically", "send_invoice"}:
        raise ValueError("must be charge_automatically or send_invoice")
    return text


def _http_base(value: Any) -> str:
    text = _str(value).rstrip("/")
    if not re.fullmatch(r"https?://[^/\s]+", text):
        raise ValueError("must be a base address such as https://api.stripe.com (no path)")
    return text


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
        _text(2000),
        "SQLAlchemy URL. SQLite file (embedded default) or postgresql+psycopg://user@host/db. "
        "Put no password here: use BILLCTL_DATABASE_PASSWORD or database.password_file.",
    ),
    Setting(
        "database.password_file",
        "",
        _text(4096),
        "Path of a file holding the database password (e.g. a mounted Kubernetes Secret).",
    ),
    Setting(
        "database.password",
        "",
        _str,
        "Database password. Environment only (BILLCTL_DATABASE_PASSWORD), never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting(
        "billing.timezone",
        "UTC",
        _timezone,
        "Default billing time zone (IANA) for new tenants; periods are calendar months in it.",
    ),
    Setting("billing.currency", "USD", _currency, "Default currency for new tenants (ISO 4217)."),
    Setting(
        "billing.invoice_number_pattern",
        "INV-{period}-{seq:06d}",
        _number_pattern,
        "Invoice number pattern; placeholders {period} {year} {month} {seq} (a global sequence).",
    ),
    Setting(
        "billing.credit_note_number_pattern",
        "CN-{seq:06d}",
        _number_pattern,
        "Credit note number pattern; placeholders {period} {year} {month} (the month it is issued) {seq} "
        "(a sequence of its own).",
    ),
    Setting(
        "billing.adjustment_lookback_months",
        12,
        _int_range(1, 24),
        "How many finalized months back late usage is looked for and billed as adjustments.",
    ),
    Setting(
        "usage.bucket_seconds",
        300,
        _int_in(60, 300, 900, 3600),
        "Usage bucket size in seconds (60, 300, 900 or 3600). A size that would straddle a month "
        "boundary in some tenant's time zone (3600 with Asia/Kolkata) is refused.",
    ),
    Setting(
        "usage.dedupe_days",
        45,
        _int_range(1, 3650),
        "Dedupe window: a repeated (tenant, event_id) is recognised for this many days after it was "
        "first counted (16 bytes per event id in the database; `billctl usage prune` drops older ids).",
    ),
    Setting(
        "usage.max_future_seconds",
        300,
        _int_range(1, 7 * 86400),
        "Events stamped further than this in the future are rejected (dead-lettered, or reported by line "
        "on import), not counted: a producer's clock may run this much ahead.",
    ),
    Setting(
        "usage.max_past_days",
        400,
        _int_range(1, 3650),
        "Events stamped more than this many days ago are rejected like future ones. The default covers "
        "backfills of the last months and billing.adjustment_lookback_months (12) with room to spare.",
    ),
    Setting(
        "redis.url",
        "redis://127.0.0.1:6379/0",
        _text(2000),
        "Redis URL of the usage stream. Put no password here: use BILLCTL_REDIS_PASSWORD.",
    ),
    Setting(
        "redis.password",
        "",
        _str,
        "Redis password. Environment only (BILLCTL_REDIS_PASSWORD), never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting("stream.name", "api_stream", _text(150), "Redis Stream the gateways append usage events to."),
    Setting(
        "stream.shards",
        0,
        _int_range(0, 1024),
        "0: one stream named stream.name; N: N shards named <stream.name>:0 ... <stream.name>:N-1.",
    ),
    Setting("stream.group", "billctl", _text(100), "Consumer group the aggregators share."),
    Setting(
        "stream.consumer",
        "",
        _text(200),
        "This process's consumer name in the group (default: <hostname>-<pid>).",
    ),
    Setting("stream.read_count", 1000, _int_range(1, 100_000), "Entries per XREADGROUP call."),
    Setting(
        "stream.batch_events",
        100000,
        _int_range(1, 10_000_000),
        "Entries per database transaction (larger: faster; memory grows with it, not the stream).",
    ),
    Setting(
        "stream.flush_ms",
        1000,
        _int_range(1, 3_600_000),
        "Commit at least this often (and at every full batch): a quiet stream's usage reaches the "
        "database within about this long.",
    ),
    Setting(
        "stream.block_ms", 2000, _int_range(1, 3_600_000), "With --follow: how long one read waits for new entries."
    ),
    Setting(
        "stream.claim_idle_ms",
        60000,
        _int_range(1, 86_400_000),
        "Entries left pending this long by another (dead) consumer are claimed and counted here "
        "(never a consumer's own; at least 10 x stream.flush_ms).",
    ),
    Setting(
        "stream.retention_seconds",
        0,
        _int_range(0, 3650 * 86400),
        "Keep counted entries this long before trimming them (0: trim as soon as every group has them).",
    ),
    Setting(
        "stream.dead_letter",
        "",
        _text(200),
        "Dead-letter stream for entries that cannot be counted (default: <stream.name>:dead).",
    ),
    Setting(
        "gateway.tenant_field",
        "x-tenant-id",
        _text(200),
        "Gateway access logs: the field (a request header logged by Envoy/Istio) holding the tenant id.",
    ),
    Setting(
        "gateway.billable_statuses",
        "200-299",
        _status_ranges,
        "Gateway access logs: which response codes bill, e.g. '200-299' or '200-399,429'.",
    ),
    Setting(
        "monthly.drain_stream",
        True,
        _bool,
        "run-monthly drains the Redis usage stream before finalizing (false: usage comes from files only).",
    ),
    Setting(
        "monthly.hold_above",
        "",
        _amounts,
        "Invoices above this total are finalized but held back from Stripe until released, per "
        "currency: 'USD=10000,EUR=9000,KRW=15000000' ('' = no limit).",
    ),
    Setting(
        "monthly.hold_multiple",
        "5",
        _multiple,
        "Hold an invoice whose total exceeds this multiple of the tenant's previous invoice (0 = never); "
        "a stolen API key looks like this.",
    ),
    Setting(
        "monthly.zero_usage_min_previous",
        1000,
        _int_range(0, 10**15),
        "Report tenants with no usage this period that had at least this many units the period before.",
    ),
    Setting(
        "monthly.lock_stale_seconds",
        900,
        _int_range(1, 7 * 86400),
        "A run lock not renewed for this long (its run was killed) may be taken over by the next run.",
    ),
    Setting(
        "monthly.lock_group",
        "",
        _text(200),
        "Runs of one group (e.g. the pods of one Kubernetes Job, whose retries start only after the failed "
        "pod stopped) take over each other's lock at once instead of waiting for it to go stale.",
    ),
    Setting(
        "monthly.pushgateway_url",
        "",
        _text(2000),
        "Prometheus Pushgateway base URL for run metrics, e.g. http://pushgateway:9091 ('' = off).",
    ),
    Setting("output.format", "table", _output, "Default output format: table, json or csv."),
    Setting(
        "stripe.api_key",
        "",
        _str,
        "Stripe secret or restricted key (sk_test_, sk_live_, rk_...). Environment only: "
        "BILLCTL_STRIPE_API_KEY or STRIPE_API_KEY, or stripe.api_key_file; never the TOML file.",
        secret=True,
        in_toml=False,
    ),
    Setting(
        "stripe.api_key_file",
        "",
        _text(4096),
        "Path of a file holding the Stripe key (e.g. a mounted Kubernetes Secret).",
    ),
    Setting(
        "stripe.api_base",
        "https://api.stripe.com",
        _http_base,
        "Stripe API base address; point it at a Stripe-compatible test server to rehearse. "
        "A live key (sk_live_) is refused unless this is Stripe's own address.",
    ),
    Setting(
        "stripe.max_requests_per_second",
        20.0,
        _stripe_rate,
        "Client-side throttle: never more Stripe requests than this per second "
        "(Stripe allows about 25/s in test mode and 100/s in live mode).",
    ),
    Setting(
        "stripe.max_retries",
        5,
        _int_range(1, 100),
        "Retries of one Stripe request after 429, 409, 5xx or a dropped connection (with backoff).",
    ),
    Setting(
        "stripe.collection_method",
        "charge_automatically",
        _collection_method,
        "charge_automatically (Stripe charges the customer's default payment method) or send_invoice "
        "(Stripe emails the invoice, payable within stripe.days_until_due days).",
    ),
    Setting("stripe.days_until_due", 30, _int_range(1, 3650), "Payment terms for send_invoice invoices, in days."),
    Setting(
        "stripe.webhook_secret",
        "",
        _str,
        "Webhook signing secret (whsec_...). Environment only: BILLCTL_STRIPE_WEBHOOK_SECRET or "
        "STRIPE_WEBHOOK_SECRET, or stripe.webhook_secret_file.",
        secret=True,
        in_toml=False,
    ),
    Setting("stripe.webhook_secret_file", "", _text(4096), "Path of a file holding the webhook signing secret."),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


@dataclass
class Config:
    values: dict[str, Any]
    sources: dict[str, str]  # key -> "flag", "env BILLCTL_X", "file PATH", "default"
    file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def database_url(self) -> str:
        """The URL to connect with, password filled in from the environment or the password file."""
        from sqlalchemy.engine import make_url  # imported when a URL is read, not for --help

        url = make_url(self["database.url"])
        password = self["database.password"]
        if not password and self["database.password_file"]:
            password = read_text(self["database.password_file"], "database.password_file", ConfigError).strip()
        if password and url.password is None and not url.drivername.startswith("sqlite"):
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    @property
    def redis_url(self) -> str:
        """The Redis URL to connect with, password filled in from BILLCTL_REDIS_PASSWORD."""
        from urllib.parse import quote, urlsplit, urlunsplit

        url = self["redis.url"]
        password = self["redis.password"]
        parts = urlsplit(url)
        if password and "@" not in parts.netloc:
            parts = parts._replace(netloc=f":{quote(password, safe='')}@{parts.netloc}")
            url = urlunsplit(parts)
        return url

    def shown(self, key: str) -> str:
        """The value as it may be displayed: secrets and URL passwords redacted."""
        value = self.values[key]
        if BY_KEY[key].secret:
            return "********" if value else ""
        if key in ("database.url", "redis.url"):
            return redact_url(value)
        return str(value)


def redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: hide everything after the scheme
        return re.sub(r"//[^@/]*@", "//***@", url)


def _find_file(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    if explicit:
        return Path(explicit), True
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"]), True
    default = Path(DEFAULT_CONFIG_FILE)
    return (default, False) if default.exists() else (None, False)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key[:100], [s.key for s in SETTINGS if s.in_toml], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _url_password(value: Any) -> bool:
    """Whether a URL (database or Redis) carries a password; False when it is no URL at all (the
    setting's own check reports that)."""
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        return False
    try:
        return bool(urlsplit(value).password)
    except ValueError:
        return False


SUPPORTED_DATABASES = ("sqlite", "postgresql")  # drivers: pysqlite, psycopg (3)
DATABASE_URL_HINT = "use sqlite:///PATH (e.g. sqlite:///billctl.db) or postgresql+psycopg://USER@HOST/DB"


def _check_database_url(url: str) -> None:
    if re.match(r"sqlite(\+pysqlite)?:///", url):  # a SQLite file: nothing more to check (nor SQLAlchemy to import)
        return
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"database.url {quote(redact_url(url))} is not a database URL", hint=DATABASE_URL_HINT
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    backend = "postgresql" if backend == "postgres" else backend
    ok = (backend == "sqlite" and driver in ("", "pysqlite")) or (backend == "postgresql" and driver in ("", "psycopg"))
    if not ok:
        raise ConfigError(f"database.url: unsupported database {quote(parsed.drivername)}", hint=DATABASE_URL_HINT)


def load_config(
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Resolve every setting. Raises ConfigError naming the key, its source and the fix."""
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
    path, must_exist = _find_file(config_file, env)
    file_values: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            if must_exist:
                raise ConfigError(
                    f"config file {quote(str(path))} does not exist", hint="create one with `billctl config init`"
                )
        else:
            text = read_text(str(path), "config file", ConfigError)
            try:
                file_values = _flatten(tomllib.loads(text))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
            except RecursionError:
                raise ConfigError(f"config file {path}: invalid TOML: arrays or tables nested too deeply") from None
    for key in file_values:
        if key not in BY_KEY:
            raise ConfigError(f"config file {path}: unknown setting {quote(key)}{_suggest(key)}")
        if not BY_KEY[key].in_toml:
            raise ConfigError(
                f"config file {path}: '{key}' is a secret and is not read from the file",
                hint=f"set {BY_KEY[key].env} instead",
            )
    # A password in a URL in the file is refused whatever overrides it: the file itself holds a secret.
    for key, fix in (
        ("database.url", "BILLCTL_DATABASE_PASSWORD or database.password_file"),
        ("redis.url", "BILLCTL_REDIS_PASSWORD"),
    ):
        if key in file_values and _url_password(file_values[key]):
            raise ConfigError(f"config file {path}: {key} contains a password", hint=f"remove it and set {fix}")
    for key in overrides:
        if key not in BY_KEY:
            raise ConfigError(f"unknown setting {quote(key)} given as a flag{_suggest(key)}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.key in overrides and overrides[setting.key] is not None:
            raw, source = overrides[setting.key], "flag"
        elif setting.env in env:
            raw, source = env[setting.env], f"env {setting.env}"
        elif setting.key in file_values:
            raw, source = file_values[setting.key], f"file {path}"
        else:
            values[setting.key], sources[setting.key] = setting.default, "default"
            continue
        try:
            if isinstance(raw, str) and not is_utf8(raw):
                raise ValueError("is not UTF-8 text")
            values[setting.key] = setting.parse(raw)
        except ValueError as exc:
            url = setting.key.endswith(".url") and isinstance(raw, str)
            shown = "********" if setting.secret else quote(redact_url(raw) if url else raw)
            raise ConfigError(f"{setting.key} = {shown} (from {source}): {exc}") from None
        sources[setting.key] = source

    _check_database_url(values["database.url"])
    return Config(values=values, sources=sources, file=path if path and path.exists() else None, overrides=overrides)


def starter_toml() -> str:
    """The documented starter configuration: every key that belongs in the file, with its default."""
    import tomli_w

    lines = [
        "# billctl configuration. Precedence: flag > environment (BILLCTL_*) > this file > default.",
        "# Secrets (database password, Stripe key) never go in this file: use the environment.",
        "",
    ]
    section = None
    for setting in SETTINGS:
        name_section, name = setting.key.split(".", 1)
        if name_section != section:
            lines.append(f"[{name_section}]")
            section = name_section
        prefix = "# " if not setting.in_toml else ""
        lines.append(f"# {setting.help}")
        lines.append(f"# environment: {setting.env}")
        value = tomli_w.dumps({name: setting.default if not setting.secret else ""}).strip()
        lines.append(prefix + value if setting.in_toml else f"# (environment only) {name}")
        lines.append("")
    return "\n".join(lines)
