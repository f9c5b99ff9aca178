"""Fixtures: a migrated database per test on SQLite and on the local PostgreSQL, and a CLI runner.

Servers: PostgreSQL at BILLCTL_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
and Redis at BILLCTL_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). When one is missing, its
tests are skipped with a message naming it; under CI (CI=true) they fail instead, so a green CI
always means every test ran.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

PG_URL = os.environ.get("BILLCTL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def server_missing(what: str, detail: str) -> None:
    message = (
        f"{what} is not reachable ({detail}). Start it (docs/how-to/develop.md, 'Test servers') or point "
        f"the BILLCTL_TEST_* variable at one."
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        server_missing(
            "PostgreSQL",
            f"{sa.engine.make_url(PG_URL).render_as_string(hide_password=True)}: {str(exc).splitlines()[0]}",
        )
    finally:
        engine.dispose()
    return PG_URL


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated template database; each test clones it (fast) instead of migrating."""
    from billctl.db.engine import create_db_engine, upgrade

    name = f"billctl_tmpl_{_worker()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from billctl.db.engine import create_db_engine, upgrade

    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}", create=True)
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of its own, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "billctl.db"
        shutil.copy(template, target)
        yield f"sqlite:///{target}"
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    template = request.getfixturevalue("pg_template")
    name = f"billctl_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.stdout)


# The tests bill October 2026 from fixed data: accept its events however long ago that is now (the
# default window, usage.max_past_days = 400, would refuse them from December 2027 on). A test of the
# window itself sets the setting explicitly.
FIXED_DATA_ENV = {"BILLCTL_USAGE_MAX_PAST_DAYS": "3650"}


@dataclass
class Cli:
    """Runs billctl in-process through Typer's CliRunner against one database."""

    db_url: str
    env: dict[str, str]

    def __call__(self, *args: str, input: str | bytes | None = None, expect: int | None = 0) -> Result:
        from billctl.cli.app import app

        runner = CliRunner()
        result = runner.invoke(
            app,
            ["--database-url", self.db_url, *args],
            input=input,
            env={"NO_COLOR": "1", "COLUMNS": "200", "BILLCTL_ACTOR": "tester", **FIXED_DATA_ENV, **self.env},
            catch_exceptions=False,
        )
        out = Result(result.exit_code, result.stdout, result.stderr)
        if expect is not None:
            assert out.exit_code == expect, (
                f"billctl {' '.join(args)} exited {out.exit_code}, expected {expect}\n"
                f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
            )
        return out


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)  # no stray ./billctl.toml is picked up
    for name in list(os.environ):
        if name.startswith("BILLCTL_") and not name.startswith("BILLCTL_TEST_"):
            monkeypatch.delenv(name)
    return Cli(db_url=db_url, env=dict(FIXED_DATA_ENV))  # in .env too: subprocess tests start from it


SAMPLES = Path(__file__).resolve().parent.parent / "billctl" / "samples"


REDIS_URL = os.environ.get("BILLCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        server_missing("Redis", f"{REDIS_URL}: {str(exc).splitlines()[0]}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    """A stream key of this test's own (and its shards and dead-letter stream), deleted afterwards."""
    import redis

    name = f"billctl-test:{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def scli(cli: Cli, redis_url: str, stream: str) -> Cli:
    """The CLI runner wired to this test's stream."""
    cli.env.update({"BILLCTL_REDIS_URL": redis_url, "BILLCTL_STREAM_NAME": stream})
    return cli


@pytest.fixture
def fast_stripe_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """billctl's Stripe client backs off 0.5 s and more between retries; keep tests fast."""
    monkeypatch.setattr("billctl.stripe.client.BACKOFF_INITIAL", 0.01)
    monkeypatch.setattr("billctl.stripe.client.BACKOFF_MAX", 0.05)


@pytest.fixture
def fake() -> Iterator:
    """A FakeStripe server of this test's own, accepting the harness's test key; the test fails if
    the server itself raised while answering."""
    from tests.fakestripe import FakeStripe
    from tests.fakestripe.billctl_harness import WEBHOOK_SECRET

    with FakeStripe(api_key_prefix="sk_test_billctl", webhook_secret=WEBHOOK_SECRET) as server:
        yield server
        assert server.server_errors == [], server.server_errors[0]
