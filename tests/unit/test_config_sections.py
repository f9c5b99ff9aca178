"""The typed sections (billctl.config.sections) and the SETTINGS table list exactly the same keys
with the same types, and importing the settings does not import SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys
import typing
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from billctl.config import SETTINGS, load_config
from billctl.config.sections import SECTIONS


def test_sections_and_table_have_the_same_keys() -> None:
    table = {s.key for s in SETTINGS}
    typed = {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in fields(cls)}
    assert typed == table


def test_sections_and_table_have_the_same_types() -> None:
    by_key = {s.key: s for s in SETTINGS}
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            setting = by_key[f"{name}.{f.name}"]
            declared = hints[f.name]
            assert type(setting.default) is declared, setting.key
            returns = typing.get_type_hints(setting.parse).get("return")
            assert returns is declared, f"{setting.key}: parser returns {returns}, section says {declared}"


def test_typed_access_agrees_with_keys() -> None:
    cfg = load_config(env={"BILLCTL_STREAM_BATCH_EVENTS": "500"}, overrides={"usage.max_past_days": 30})
    assert cfg.stream.batch_events == 500 == cfg["stream.batch_events"]
    assert cfg.usage.max_past_days == 30 == cfg["usage.max_past_days"]
    for setting in SETTINGS:
        name, key = setting.key.split(".", 1)
        assert getattr(getattr(cfg, name), key) == cfg[setting.key]


def test_secrets_stay_out_of_repr() -> None:
    cfg = load_config(env={"BILLCTL_STRIPE_API_KEY": "sk_test_hidden", "BILLCTL_DATABASE_PASSWORD": "hunter2"})
    assert "sk_test_hidden" not in repr(cfg.stripe) and "hunter2" not in repr(cfg.database)


def test_importing_the_settings_does_not_import_sqlalchemy() -> None:
    code = "import sys, billctl.config; assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_settings_does_not_import_sqlalchemy() -> None:
    """The CLI loads the settings before every command, `--help` of a group included."""
    code = (
        "import sys, billctl.config as c; c.load_config(env={'BILLCTL_DATABASE_URL': 'postgresql://u@h/db'});"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


URLS = [
    "sqlite:///billctl.db",
    "sqlite://",
    "postgresql+psycopg://user@host:5432/db?sslmode=require",
    "postgres://u:p@[::1]:5/x",
    "postgresql://host:notaport/db",
    "mysql://x",
    "no url at all",
    "://x",
    "sqlite:/x",
    "a+b+c://",
    "postgresql://h:/db",
    "x://u:p@h:٣/d",
]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from(URLS), st.text(max_size=40), st.from_regex(r"[a-z+]{0,8}://[^\s]{0,30}")))
def test_database_driver_parses_as_sqlalchemy_does(url: str) -> None:
    from sqlalchemy.engine import make_url

    from billctl.config.loader import database_driver

    try:
        expected: str | None = make_url(url).drivername
    except Exception:
        expected = None
    assert database_driver(url) == expected


def test_settings_are_read_through_the_typed_sections_only() -> None:
    """Outside the settings package, code reads ``config.stream.batch_events`` (checked by mypy), never
    ``config["stream.batch_events"]`` (a typo there is found only at run time)."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "billctl"
    string_key = re.compile(r"""config\[\s*["'][a-z_]+\.[a-z_]+["']\s*\]""")
    found = [
        f"{path.relative_to(package.parent)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if "config" not in path.relative_to(package).parts[:1]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if string_key.search(line)
    ]
    assert not found, "read these settings through the typed sections: " + ", ".join(found)
