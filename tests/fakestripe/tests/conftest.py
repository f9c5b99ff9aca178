"""Fixtures for the FakeStripe tests: a started server per test and an SDK client pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stripe import StripeClient
from stripe._http_client import HTTPClient

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repository on sys.path
    sys.path.insert(0, _REPO)

from tests.fakestripe import FakeStripe  # noqa: E402


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sleeps at least 0.5 s between retries; keep the suite fast."""
    monkeypatch.setattr(HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(HTTPClient, "MAX_DELAY", 0.02)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server
        assert server.server_errors == [], server.server_errors[0]


@pytest.fixture
def client(fake: FakeStripe) -> StripeClient:
    return StripeClient("sk_test_123", base_addresses={"api": fake.url}, max_network_retries=2)
