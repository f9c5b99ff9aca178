"""The idempotency keys billctl sends to Stripe are pinned byte for byte: Stripe remembers a key for a
day, so a key that changes between two releases would let a retry act twice (DESIGN.md invariant 9).
The values below were computed by the code before the keys moved to ``billctl.stripe.idempotency``."""

from __future__ import annotations

from decimal import Decimal

from billctl.stripe import credit_notes as cn
from billctl.stripe import idempotency as keys
from billctl.stripe import mapping as m

NUMBER = "INV-2026-10-000001"


def test_customer_keys_are_pinned() -> None:
    assert keys.customer_create_key("acme", m.customer_create_params("acme")) == (
        "billctl-tenant-acme-customer-create-ac54eb7f890f"
    )
    odd = "acme corp/é"
    assert keys.customer_create_key(odd, m.customer_create_params(odd), replacing="cus_123") == (
        "billctl-tenant-acme_corp__-customer-create-replacing-cus_123-fab5c7533ea8"
    )
    before = {"name": "A", "email": None, "metadata": {"tenant_id": "acme", "billctl": "tenant"}}
    wanted = m.customer_params("acme", "Acme", "a@example.com")
    assert keys.customer_update_key("acme", "cus_1", before, wanted, "2026-10-01T00:00:00+00:00") == (
        "billctl-tenant-acme-customer-update-b263ec976057"
    )


def test_invoice_and_item_keys_are_pinned() -> None:
    params = {"customer": "cus_1", "currency": "usd"}
    assert keys.invoice_key(NUMBER, "create", params) == f"billctl-inv-{NUMBER}-create-1904911bdc1b"
    assert keys.invoice_key(NUMBER, "finalize") == f"billctl-inv-{NUMBER}-finalize"
    assert keys.invoice_key(NUMBER, "void") == f"billctl-inv-{NUMBER}-void"
    item = {"amount": 4400, "currency": "usd"}
    assert keys.item_key(NUMBER, 3, item) == f"billctl-inv-{NUMBER}-item-3-643bb64f59e1"


def test_credit_note_key_is_pinned() -> None:
    params = {"invoice": "in_1", "lines": [{"amount": 100}], "memo": "x", "amt": Decimal("1.5")}
    assert keys.credit_note_key("CN-2026-10-000001", params) == "billctl-cn-CN-2026-10-000001-create-c2339a8bc51e"


def test_the_old_import_paths_give_the_same_functions() -> None:
    assert m.invoice_key is keys.invoice_key and m.item_key is keys.item_key
    assert m.customer_create_key is keys.customer_create_key and m.customer_update_key is keys.customer_update_key
    assert cn.credit_note_key is keys.credit_note_key


def test_a_resend_key_is_new_each_time() -> None:
    first, second = keys.resend_key("k"), keys.resend_key("k")
    assert first.startswith("k-again-") and first != second
