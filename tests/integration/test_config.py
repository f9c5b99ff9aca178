"""Settings: flag > environment > TOML > default, sources shown, secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from billctl.config import load_config, starter_toml
from billctl.errors import ConfigError


def test_precedence(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[billing]\ntimezone = "Asia/Seoul"\ncurrency = "EUR"\n[usage]\nbucket_seconds = 60\n')
    cfg = load_config(str(path), {"usage.bucket_seconds": "900"}, env={"BILLCTL_BILLING_CURRENCY": "KRW"})
    assert cfg["billing.timezone"] == "Asia/Seoul" and cfg.sources["billing.timezone"] == f"file {path}"
    assert cfg["billing.currency"] == "KRW" and cfg.sources["billing.currency"] == "env BILLCTL_BILLING_CURRENCY"
    assert cfg["usage.bucket_seconds"] == 900 and cfg.sources["usage.bucket_seconds"] == "flag"
    assert cfg["output.format"] == "table" and cfg.sources["output.format"] == "default"


def test_errors_name_key_and_source(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[usage]\nbuckt_seconds = 60\n")
    with pytest.raises(ConfigError, match="did you mean 'usage.bucket_seconds'"):
        load_config(str(path), env={})
    path.write_text("[usage]\nbucket_seconds = 7\n")
    with pytest.raises(ConfigError, match=r"usage.bucket_seconds = 7 \(from file"):
        load_config(str(path), env={})
    path.write_text("[usage\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(path), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"), env={})


def test_secrets_never_from_file_and_redacted(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "postgresql://u:hunter2@db/x"\n')
    with pytest.raises(ConfigError, match="contains a password") as info:
        load_config(str(path), env={})
    assert "hunter2" not in str(info.value)
    path.write_text('[database]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="secret"):
        load_config(str(path), env={})
    cfg = load_config(None, env={"BILLCTL_DATABASE_URL": "postgresql://u@db/x", "BILLCTL_DATABASE_PASSWORD": "hunter2"})
    assert "hunter2" in cfg.database_url
    assert "hunter2" not in cfg.shown("database.password") and cfg.shown("database.password") == "********"
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    cfg = load_config(
        None, env={"BILLCTL_DATABASE_URL": "postgresql://u@db/x", "BILLCTL_DATABASE_PASSWORD_FILE": str(secret_file)}
    )
    assert ":from-file@" in cfg.database_url


def test_example_file_is_the_starter_and_parses(tmp_path: Path):
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    assert example.read_text() == starter_toml(), "regenerate config.example.toml from billctl.config.starter_toml()"
    cfg = load_config(str(example), env={})
    from billctl.config import BY_KEY

    assert all(source.startswith("file") for key, source in cfg.sources.items() if BY_KEY[key].in_toml)


def test_config_cli(cli, tmp_path):
    result = cli("config", "init", str(tmp_path / "billctl.toml"))
    assert "wrote" in result.stderr
    cli("config", "init", str(tmp_path / "billctl.toml"), expect=9)
    env_cli = type(cli)(
        db_url=cli.db_url, env={"BILLCTL_DATABASE_PASSWORD": "topsecret", "BILLCTL_BILLING_TIMEZONE": "Europe/Paris"}
    )
    shown = env_cli("--config", str(tmp_path / "billctl.toml"), "config", "show", "-o", "json")
    rows = {row["key"]: row for row in shown.json()}
    assert rows["billing.timezone"]["value"] == "Europe/Paris"
    assert rows["billing.timezone"]["source"] == "env BILLCTL_BILLING_TIMEZONE"
    assert rows["database.url"]["source"] == "flag"
    assert rows["output.format"]["source"].startswith("file")
    assert "topsecret" not in shown.stdout + shown.stderr
    bad = env_cli("--set", "usage.bucket_seconds=61", "config", "show", expect=4)
    assert "usage.bucket_seconds" in bad.stderr
