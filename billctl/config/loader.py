"""Resolving the settings: flag > environment (``BILLCTL_*``) > TOML file > default.

Secrets never come from the TOML file and are redacted wherever shown. SQLAlchemy (for URL parsing)
is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from billctl.config.sections import (
    BillingSettings,
    CreditsSettings,
    DatabaseSettings,
    GatewaySettings,
    MonthlySettings,
    OutputSettings,
    RedisSettings,
    StreamSettings,
    StripeSettings,
    UsageSettings,
    of_section,
)
from billctl.config.settings import BY_KEY, ENV_PREFIX, SETTINGS
from billctl.core.bounds import is_utf8, quote
from billctl.errors import ConfigError
from billctl.files import read_text

DEFAULT_CONFIG_FILE = "billctl.toml"


@dataclass
class Config:
    values: dict[str, Any]
    sources: dict[str, str]  # key -> "flag", "env BILLCTL_X", "file PATH", "default"
    file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """Untyped access by key ("stream.batch_events"); prefer the typed sections below."""
        return self.values[key]

    # Typed sections: ``config.stream.batch_events`` is an int, checked by mypy.
    @cached_property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings(**of_section(self.values, "database"))

    @cached_property
    def billing(self) -> BillingSettings:
        return BillingSettings(**of_section(self.values, "billing"))

    @cached_property
    def usage(self) -> UsageSettings:
        return UsageSettings(**of_section(self.values, "usage"))

    @cached_property
    def redis(self) -> RedisSettings:
        return RedisSettings(**of_section(self.values, "redis"))

    @cached_property
    def stream(self) -> StreamSettings:
        return StreamSettings(**of_section(self.values, "stream"))

    @cached_property
    def gateway(self) -> GatewaySettings:
        return GatewaySettings(**of_section(self.values, "gateway"))

    @cached_property
    def monthly(self) -> MonthlySettings:
        return MonthlySettings(**of_section(self.values, "monthly"))

    @cached_property
    def output(self) -> OutputSettings:
        return OutputSettings(**of_section(self.values, "output"))

    @cached_property
    def stripe(self) -> StripeSettings:
        return StripeSettings(**of_section(self.values, "stripe"))

    @cached_property
    def credits(self) -> CreditsSettings:
        return CreditsSettings(**of_section(self.values, "credits"))

    @property
    def database_url(self) -> str:
        """The URL to connect with, password filled in from the environment or the password file."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database.url)
        password = self.database.password
        if not password and self.database.password_file:
            password = read_text(self.database.password_file, "database.password_file", ConfigError).strip()
        if password and url.password is None and not url.drivername.startswith("sqlite"):
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    @property
    def redis_url(self) -> str:
        """The Redis URL to connect with, password filled in from BILLCTL_REDIS_PASSWORD."""
        from urllib.parse import quote, urlsplit, urlunsplit

        url = self.redis.url
        password = self.redis.password
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
    """``url`` with its password replaced by ``***`` (as SQLAlchemy renders it)."""
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


# SQLAlchemy's own URL pattern (sqlalchemy.engine.url._parse_url), so that checking database.url at
# start-up needs no SQLAlchemy import (tests/unit/test_config_sections.py compares the two).
_SQLALCHEMY_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


def database_driver(url: str) -> str | None:
    """The driver name of a database URL ("postgresql+psycopg"), None when SQLAlchemy could not parse it."""
    match = _SQLALCHEMY_URL.match(url)
    if match is None:
        return None
    port = match.group("port")
    if port is not None:  # SQLAlchemy refuses an empty port too ("host:/db")
        try:
            int(port)
        except ValueError:
            return None
    return match.group("name")


def _check_database_url(url: str) -> None:
    drivername = database_driver(url)
    if drivername is None:
        raise ConfigError(
            f"database.url {quote(redact_url(url))} is not a database URL", hint=DATABASE_URL_HINT
        ) from None
    backend, _, driver = drivername.partition("+")
    backend = "postgresql" if backend == "postgres" else backend
    ok = (backend == "sqlite" and driver in ("", "pysqlite")) or (backend == "postgresql" and driver in ("", "psycopg"))
    if not ok:
        raise ConfigError(f"database.url: unsupported database {quote(drivername)}", hint=DATABASE_URL_HINT)


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
