"""usage import of Envoy/Istio JSON access logs: tenant from a header field, billable statuses,
request ids as event ids (a request logged twice counts once), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from tests.conftest import Cli
from tests.helpers import units_by_tenant


def _line(request_id: str | None, status: int | str, tenant: str | None = "acme", path: str = "/v1/search?q=x") -> str:
    entry = {
        "start_time": "2026-10-05T10:00:00.123Z",
        "method": "GET",
        "path": path,
        "protocol": "HTTP/1.1",
        "response_code": status,
        "response_flags": "-",
        "bytes_received": 0,
        "duration": 12,
        "x-tenant-id": tenant,
        "request_id": request_id,
        "authority": "api.example.com",
        "upstream_host": "10.0.0.7:8080",
    }
    return json.dumps(entry)


def test_envoy_access_logs(cli: Cli, tmp_path) -> None:
    cli("tenants", "create", "acme", "--name", "Acme")
    log = tmp_path / "access.log"
    log.write_text(
        "\n".join(
            [
                _line("r-1", 200),
                _line("r-1", 200),  # the same request logged twice (gateway and sidecar)
                _line("r-2", 201, path="/v1/ocr"),
                _line("r-3", 404),  # not billable by default
                _line("r-4", 500),
                _line("r-5", 429),
                _line("r-6", "-"),  # no response at all
                _line("r-7", 200, tenant=None),  # no tenant header logged
                _line("r-8", 200, tenant="-"),
                _line(None, 200),  # no request id: the line's content is the id
                "not json",
            ]
        )
        + "\n"
    )
    report = cli("usage", "import", str(log), "-o", "json").json()  # --format auto recognises access logs
    assert (report["counted"], report["duplicates"], report["not_billable"]) == (3, 1, 3)
    reasons = [r["reason"] for r in report["rejections"]]
    assert len(reasons) == 4
    assert any("response_code '-'" in r for r in reasons)
    assert sum("x-tenant-id is missing" in r for r in reasons) == 2
    assert any("not valid JSON" in r for r in reasons)
    assert units_by_tenant(cli.db_url) == {"acme": 3}
    shown = cli("usage", "show", "--tenant", "acme", "--period", "2026-10", "-o", "json").json()
    assert {e["endpoint"] for e in shown["endpoints"]} == {"/v1/search", "/v1/ocr"}  # query string dropped

    again = cli("usage", "import", str(log), "--format", "envoy", "-o", "json").json()
    assert again["counted"] == 0 and again["duplicates"] == 4

    # which statuses bill is configurable; the tenant field too
    cli.env.update({"BILLCTL_GATEWAY_BILLABLE_STATUSES": "200-299,429", "BILLCTL_GATEWAY_TENANT_FIELD": "x-tenant-id"})
    third = cli("usage", "import", str(log), "-o", "json").json()
    assert third["counted"] == 1  # r-5 (429) now bills
    cli.env["BILLCTL_GATEWAY_BILLABLE_STATUSES"] = "2xx"
    bad = cli("usage", "import", str(log), expect=4)
    assert "gateway.billable_statuses" in bad.stderr
