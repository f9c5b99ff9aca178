"""A stateful Stripe-compatible HTTP server for tests: ``from tests.fakestripe import FakeStripe``."""

from .server import FakeClock, FakeStripe, Fault, LoggedRequest, WebhookDelivery
from .validation import ParamError, decode_form, validate

__all__ = ["FakeClock", "FakeStripe", "Fault", "LoggedRequest", "ParamError", "WebhookDelivery", "decode_form",
           "validate"]
