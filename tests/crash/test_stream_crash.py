"""Crash test (DESIGN.md invariants 1 and 2): a producer keeps appending (some entries bad) while
`billctl usage aggregate` runs as a subprocess that is killed with SIGKILL at random moments and
restarted, several times; afterwards the stored units per tenant equal what was produced, exactly,
and each bad entry has exactly one dead letter. Also with two aggregators at once. Against the
real Redis, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.conftest import Cli
from tests.helpers import units_by_tenant

ROOT = Path(__file__).resolve().parents[2]
TENANTS = [f"t{i}" for i in range(8)]


BAD = ({"tenant_id": "ghost", "units": 1}, {"tenant_id": TENANTS[0], "units": "lots"}, {"endpoint": "/v1/x"})


def _produce(
    r: redis.Redis, stream: str, total: int, expected: dict[str, int], bad: list[bytes], done: threading.Event
) -> None:
    """Appends ``total`` distinct events in small pipelines over a few seconds; about 5 % are sent
    twice (a producer retry: same event_id, a new entry), and about 1 % of the entries are bad
    (their entry ids go to ``bad``)."""
    rng = random.Random(7)
    i = 0
    while i < total:
        pipe = r.pipeline(transaction=False)
        bad_at = []
        for _ in range(200):
            tenant = TENANTS[i % len(TENANTS)]
            units = 1 + i % 5
            fields = {"tenant_id": tenant, "endpoint": f"/v1/e{i % 4}", "units": units, "event_id": f"ev-{i}"}
            pipe.xadd(stream, fields)
            if rng.random() < 0.05:
                pipe.xadd(stream, fields)
            if rng.random() < 0.01:
                bad_at.append(len(pipe))
                pipe.xadd(stream, rng.choice(BAD))
            expected[tenant] = expected.get(tenant, 0) + units
            i += 1
        ids = pipe.execute()
        bad.extend(ids[at] for at in bad_at)
        time.sleep(0.02)
    done.set()


def _spawn(env: dict[str, str], consumer: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "billctl", "usage", "aggregate", "--follow"],
        env={**env, "BILLCTL_STREAM_CONSUMER": consumer},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("aggregators", [1, 2])
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    scli: Cli, stream: str, redis_url: str, aggregators: int
) -> None:
    for tenant in TENANTS:
        scli("tenants", "create", tenant, "--name", tenant)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLCTL_")},
        "BILLCTL_DATABASE_URL": scli.db_url,
        "BILLCTL_REDIS_URL": redis_url,
        "BILLCTL_STREAM_NAME": stream,
        "BILLCTL_STREAM_BATCH_EVENTS": "1500",
        "BILLCTL_STREAM_READ_COUNT": "300",
        "BILLCTL_STREAM_BLOCK_MS": "100",
        "BILLCTL_STREAM_FLUSH_MS": "30",
        "BILLCTL_STREAM_CLAIM_IDLE_MS": "300",
        "PYTHONPATH": str(ROOT),
    }
    r = redis.Redis.from_url(redis_url)
    expected: dict[str, int] = {}
    bad: list[bytes] = []
    produced = threading.Event()
    producer = threading.Thread(target=_produce, args=(r, stream, 30_000, expected, bad, produced))
    producer.start()
    rng = random.Random(1234 + aggregators)
    kills = 0
    procs = [_spawn(env, f"agg{n}-0") for n in range(aggregators)]
    try:
        while kills < 6 or not produced.is_set():
            time.sleep(rng.uniform(0.3, 1.6))
            victim = rng.randrange(aggregators)
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            kills += 1
            procs[victim] = _spawn(env, f"agg{victim}-{kills}")  # a new pod name, as after a restart
        producer.join()
        # let the survivors finish: everything counted, nothing pending
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            groups = r.xinfo_groups(stream)
            if (
                groups
                and groups[0]["pending"] == 0
                and groups[0]["lag"] == 0
                and units_by_tenant(scli.db_url) == expected
            ):
                break
            time.sleep(0.3)
        time.sleep(3)  # the newest aggregator is past its start-up (imports) and has its SIGTERM handler
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        producer.join()
    assert kills >= 6
    assert units_by_tenant(scli.db_url) == expected
    assert all(proc.returncode == 0 for proc in procs), [proc.returncode for proc in procs]  # SIGTERM: clean exit
    assert r.xlen(stream) == 0  # everything counted was trimmed, exactly
    # invariant 2, exactly once too: one dead letter per bad entry, whatever was killed when
    letters = Counter((f[b"_source"].decode(), f[b"_id"]) for _, f in r.xrange(f"{stream}:dead"))
    assert len(bad) > 100
    assert {k: n for k, n in letters.items() if n > 1} == {}
    assert set(letters) == {(stream, entry_id) for entry_id in bad}
    r.close()
