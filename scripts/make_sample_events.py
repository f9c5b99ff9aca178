"""Regenerate billctl/samples/events-2026-10.ndjson (deterministic; the file is committed).

    python scripts/make_sample_events.py > billctl/samples/events-2026-10.ndjson
"""

import json
import random
from datetime import UTC, datetime, timedelta

rng = random.Random(20261001)
TENANTS = {"acme": 900, "globex": 1400, "initech": 700, "hanbit": 500, "tata": 400, "umbrella": 1100}
ENDPOINTS = ["/v1/search", "/v1/search", "/v1/translate", "/v1/ocr", "/v1/users"]
start = datetime(2026, 10, 1, tzinfo=UTC)
events = []
for tenant, count in TENANTS.items():
    for n in range(count):
        at = start + timedelta(seconds=rng.randrange(31 * 86400))
        events.append({"tenant_id": tenant, "endpoint": rng.choice(ENDPOINTS),
                       "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "units": rng.choice([1, 1, 5, 20, 100]),
                       "event_id": f"{tenant}-{n:06d}"})
events.sort(key=lambda e: e["ts"])
for event in events:
    print(json.dumps(event, separators=(",", ":")))
