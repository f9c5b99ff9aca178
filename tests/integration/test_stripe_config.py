"""Stripe configuration: where the key comes from, what is refused, and that it is never shown."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from billctl.config import load_config
from billctl.errors import ConfigError, redact
from billctl.stripe.keys import resolve_api_key, stripe_settings
from tests.fakestripe import FakeStripe
from tests.fakestripe.billctl_harness import TEST_KEY, setup_tenants, stripe_env

LIVE = "sk_live_51HxLIVEkeyNEVERshown0000"


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    from billctl.cli.app import app

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BILLCTL_", "STRIPE_")) and not name.startswith("BILLCTL_TEST_"):
            monkeypatch.delenv(name)
    return CliRunner().invoke(
        app,
        ["--database-url", f"sqlite:///{tmp_path}/none.db", *args],
        env={"NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        catch_exceptions=False,
    )


def test_missing_key_is_a_config_error(tmp_path, monkeypatch):
    for command in (["stripe", "push"], ["stripe", "sync-customers"], ["stripe", "sync-status"], ["stripe", "check"]):
        result = run(tmp_path, monkeypatch, *command)
        assert result.exit_code == 4, result.stderr
        assert "no Stripe API key configured" in result.stderr and "STRIPE_API_KEY" in result.stderr


def test_key_sources_and_precedence(tmp_path):
    key_file = tmp_path / "stripe.key"
    key_file.write_text(TEST_KEY + "\n")
    cfg = load_config(None, {"stripe.api_key_file": str(key_file)}, env={})
    assert resolve_api_key(cfg, env={}) == (TEST_KEY, f"file {key_file}")
    assert resolve_api_key(cfg, env={"STRIPE_API_KEY": "sk_test_fromenv1234567"})[1] == "env STRIPE_API_KEY"
    cfg = load_config(None, env={"BILLCTL_STRIPE_API_KEY": "sk_test_prefixed123456"})
    assert resolve_api_key(cfg, env={"STRIPE_API_KEY": "sk_test_fromenv1234567"})[0] == "sk_test_prefixed123456"
    settings = stripe_settings(load_config(None, env={}), env={"STRIPE_API_KEY": "rk_test_restricted12345"})
    assert settings.key_kind == "test restricted key"
    assert "rk_test_restricted12345" not in repr(settings) + str(settings)
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_api_key(load_config(None, {"stripe.api_key_file": str(tmp_path / "nope")}, env={}), env={})


def test_key_never_accepted_from_toml(tmp_path, monkeypatch):
    (tmp_path / "billctl.toml").write_text(f'[stripe]\napi_key = "{TEST_KEY}"\n')
    result = run(tmp_path, monkeypatch, "stripe", "check")
    assert result.exit_code == 4 and "secret" in result.stderr
    assert TEST_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("key", "base", "message"),
    [
        (LIVE, "http://127.0.0.1:12111", "refusing to send a live Stripe key"),
        (LIVE, "https://stripe-mock.internal", "refusing to send a live Stripe key"),
        ("pk_test_publishable123456", "https://api.stripe.com", "publishable"),
        ("hunter2-not-a-key", "https://api.stripe.com", "not a Stripe secret or restricted key"),
        ("sk_test_fine12345678", "http://api.stripe.com", "https"),
    ],
)
def test_unsafe_or_invalid_keys_are_refused(tmp_path, monkeypatch, key, base, message):
    result = run(
        tmp_path,
        monkeypatch,
        "stripe",
        "push",
        env={"STRIPE_API_KEY": key, "BILLCTL_STRIPE_API_BASE": base},
    )
    assert result.exit_code == 4, result.stderr
    assert message in result.stderr
    assert key not in result.stdout + result.stderr


def test_live_key_allowed_for_stripe_itself(tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch, "stripe", "check", "-o", "json", env={"STRIPE_API_KEY": LIVE})
    assert result.exit_code == 0, result.stderr
    assert '"live secret key"' in result.stdout and LIVE not in result.stdout + result.stderr


def test_bad_settings(tmp_path, monkeypatch):
    for setting, value, message in [
        ("stripe.max_requests_per_second", "0", "above 0"),
        ("stripe.collection_method", "cash", "charge_automatically or send_invoice"),
        ("stripe.api_base", "https://api.stripe.com/v1", "no path"),
    ]:
        result = run(tmp_path, monkeypatch, "--set", f"{setting}={value}", "stripe", "check")
        assert result.exit_code == 4 and message in result.stderr, (setting, result.stderr)


def test_rejected_key_is_a_config_error_and_never_printed(cli, tmp_path, db_url):
    with FakeStripe(api_key_prefix="sk_test_somebodyelse") as fake:
        setup_tenants(cli, tmp_path, ["acme"])
        cli.env.update(stripe_env(fake))
        result = cli("stripe", "push", expect=4)
        assert "Stripe refused the API key" in result.stderr
        assert TEST_KEY not in result.stdout + result.stderr
        assert TEST_KEY[-4:] not in result.stderr  # not even Stripe's masked form of it
        check = cli("stripe", "check")
        assert TEST_KEY not in check.stdout + check.stderr and "test secret key" in check.stdout


def test_stripe_down_is_a_dependency_error(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("billctl.stripe.client.BACKOFF_INITIAL", 0.01)
    setup_tenants(cli, tmp_path, ["acme"])
    with FakeStripe() as fake:
        url = fake.url
    cli.env.update(
        {"BILLCTL_STRIPE_API_KEY": TEST_KEY, "BILLCTL_STRIPE_API_BASE": url, "BILLCTL_STRIPE_MAX_RETRIES": "1"}
    )
    result = cli("stripe", "push", expect=5)
    assert "Stripe unreachable" in result.stderr


def test_redact():
    text = "Invalid API Key provided: sk_test_****1234; also rk_live_abcdEFGH1234 and whsec_abcdef123456"
    assert redact(text) == "Invalid API Key provided: [redacted key]; also [redacted key] and whsec_[redacted]"


# -- the pinned API version and the lock files -------------------------------------------------------


def _locked(path: Path) -> dict[str, str]:
    """package -> pinned version of a lock file (``name==version`` lines)."""
    pins = {}
    for line in path.read_text().splitlines():
        if line and line[0].isalnum() and "==" in line:
            name, _, rest = line.partition("==")
            pins[name.strip().lower()] = rest.split()[0].rstrip("\\").strip()
    return pins


def test_api_version_is_pinned_and_matches_the_installed_sdk(fake, cli, tmp_path):
    """Bumping the SDK without the API_VERSION constant (or the other way round) fails here."""
    import stripe
    from stripe._api_version import _ApiVersion

    from billctl.stripe.keys import API_VERSION

    assert API_VERSION == _ApiVersion.CURRENT == stripe.api_version
    assert fake.api_version == API_VERSION  # what FakeStripe reports: the SDK's version
    setup_tenants(cli, tmp_path, ["acme"])
    cli.env.update(stripe_env(fake))
    doc = cli("stripe", "check", "-o", "json").json()
    assert doc["api_version"] == API_VERSION
    assert API_VERSION in cli("stripe", "check").stdout
    cli("stripe", "push")
    assert fake.request_log and {r.stripe_version for r in fake.request_log} == {API_VERSION}


def test_lock_files_pin_what_is_installed_and_agree():
    """The build installs from the locks: they cover pyproject's dependencies, pin the SDK that is
    installed (so the API version test above speaks for the image too), and the dev lock pins every
    runtime package exactly as the runtime lock does."""
    import stripe

    root = Path(__file__).resolve().parents[2]
    runtime, dev = _locked(root / "requirements.lock"), _locked(root / "requirements-dev.lock")
    assert runtime["stripe"] == stripe.VERSION
    assert int(stripe.VERSION.split(".")[0]) == 16
    for package, version in runtime.items():
        assert dev.get(package) == version, package
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def name(spec: str) -> str:
        return re.split(r"[\[<>=!;~ ]", spec, maxsplit=1)[0].lower().replace("_", "-")

    assert {name(d) for d in project["dependencies"]} <= set(runtime)
    assert {name(d) for d in project["optional-dependencies"]["dev"]} <= set(dev)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (root / lock).read_text()
        assert "make lock" in text and "--hash=sha256:" in text
