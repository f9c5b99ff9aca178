"""Issue 4 benchmark: push 2,000 finalized invoices (2 lines each, a new customer per tenant) to
FakeStripe over HTTP with the throttle at 100 requests/s, then again with 10 % of the answers
injected as 429 or 500 (half of the 500s after Stripe acted, so only idempotency saves the day).
About 5 minutes.

    python -m benchmarks stripe_push [--invoices 2000] [--rate 100] [--fault-invoices 2000] [--workers 4]

Targets: achieved request rate >= 0.9 x the limit and never above it in any one-second window (as
the throttle let requests go; what the server saw is reported too: loopback and scheduling jitter
on a busy machine can bunch a few arrivals); with faults, zero duplicates: one customer per tenant,
one Stripe invoice per local invoice with exactly its lines. The database is a scratch SQLite file (or --database-url);
FakeStripe runs in a process of its own and rates are measured on its arrival times.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from benchmarks.common import max_in_window, report, stage

KEY = "sk_test_benchmarkKEY000000000000"


def load(url: str, invoices: int) -> None:
    from billctl.db.engine import create_db_engine, upgrade

    engine = create_db_engine(url)
    upgrade(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    start, end = datetime(2026, 10, 1), datetime(2026, 11, 1)
    tenants = [
        {"key": f"t{i:05d}", "name": f"Tenant {i}", "email": f"billing@t{i:05d}.test", "now": now}
        for i in range(invoices)
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tenant (key, name, email, timezone, currency, tax_rate, status, created_at, updated_at) "
                "VALUES (:key, :name, :email, 'UTC', 'USD', '0', 'active', :now, :now)"
            ),
            tenants,
        )
        ids = dict(conn.execute(sa.text("SELECT key, id FROM tenant")).all())
        conn.execute(
            sa.text(
                "INSERT INTO invoice (number, tenant_id, period, period_start, period_end, currency, subtotal_minor, "
                "tax_minor, total_minor, status, fingerprint, inputs, finalized_at, actor) VALUES (:number, :tid, "
                "'2026-10', :start, :end, 'USD', :total, 0, :total, 'finalized', 'bench', '{}', :now, 'bench')"
            ),
            [
                {
                    "number": f"INV-2026-10-{i + 1:06d}",
                    "tid": ids[t["key"]],
                    "start": start,
                    "end": end,
                    "total": 2900 + i,
                    "now": now,
                }
                for i, t in enumerate(tenants)
            ],
        )
        invoice_ids = dict(conn.execute(sa.text("SELECT number, id FROM invoice")).all())
        lines = []
        for i in range(invoices):
            iid = invoice_ids[f"INV-2026-10-{i + 1:06d}"]
            lines.append(
                {
                    "iid": iid,
                    "pos": 1,
                    "kind": "base",
                    "desc": "Base fee (bench)",
                    "qty": "1",
                    "price": "29.00",
                    "amount": 2900,
                }
            )
            lines.append(
                {
                    "iid": iid,
                    "pos": 2,
                    "kind": "usage",
                    "desc": f"Usage: {i:,} units",
                    "qty": str(i),
                    "price": "0.01",
                    "amount": i,
                }
            )
        conn.execute(
            sa.text(
                "INSERT INTO invoice_line (invoice_id, position, kind, description, quantity, unit_price, "
                "amount_minor, unrounded, detail) VALUES (:iid, :pos, :kind, :desc, :qty, :price, :amount, "
                "'0', '{}')"
            ),
            lines,
        )
    engine.dispose()


def _serve(conn, rate: float, faults: float) -> None:  # type: ignore[no-untyped-def]
    """FakeStripe in its own process (as Stripe is another machine): the benchmark's worker threads
    and the server's do not share one interpreter lock, so arrival times are not skewed by it."""
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from tests.fakestripe import FakeStripe

    with FakeStripe(api_key_prefix="sk_test_", rate_limit=rate) as fake:
        injected = [0]
        if faults:
            fake.random_faults(faults, (429, 500), after_processing_share=0.5, seed=4)
            pick = fake._random_fault

            def counted(method: str, path: str):  # type: ignore[no-untyped-def]
                fault = pick(method, path)
                if fault is not None and fault.status == 429:
                    injected[0] += 1
                return fault

            fake._random_fault = counted  # type: ignore[method-assign]
        conn.send(fake.url)
        conn.recv()  # "dump": the run is over
        with fake._lock:
            conn.send(
                {
                    "log": [(r.received, r.status) for r in fake.request_log],
                    "customers": [c["metadata"].get("tenant_id") for c in fake.customers.values()],
                    "invoices": [
                        (i["id"], i["metadata"].get("billctl_invoice"), i["status"]) for i in fake.invoices.values()
                    ],
                    "items": [i["invoice"] for i in fake.invoiceitems.values()],
                    "injected_429": injected[0],
                }
            )


def duplicates(state: dict, url: str) -> dict[str, int]:
    """Counts of everything that is not exactly once."""
    from billctl.db.engine import create_db_engine

    engine = create_db_engine(url)
    with engine.connect() as conn:
        local = {
            number: (sid, lines)
            for number, sid, lines in conn.execute(
                sa.text(
                    "SELECT i.number, i.stripe_invoice_id, COUNT(l.id) FROM invoice i "
                    "JOIN invoice_line l ON l.invoice_id = i.id GROUP BY i.number, i.stripe_invoice_id"
                )
            )
        }
    engine.dispose()
    customers = Counter(state["customers"])
    invoices = Counter(number for _, number, _ in state["invoices"])
    items = Counter(state["items"])
    statuses = Counter(status for _, _, status in state["invoices"])
    by_id = {number: id_ for id_, number, _ in state["invoices"]}
    return {
        "customers twice": sum(1 for n in customers.values() if n > 1),
        "stripe invoices twice": sum(1 for n in invoices.values() if n > 1),
        "local invoices not in stripe": sum(1 for number in local if number not in invoices),
        "wrong item count": sum(1 for number, (_, n) in local.items() if items.get(by_id.get(number), 0) != n),
        "stored id differs": sum(1 for number, (sid, _) in local.items() if sid != by_id.get(number)),
        "drafts left": statuses.get("draft", 0),
    }


def run(label: str, invoices: int, rate: float, workers: int, faults: float, db: str | None) -> list[tuple[str, str]]:
    from billctl.config import load_config
    from billctl.services import stripe_sync as svc
    from billctl.services.context import App
    from billctl.stripe.throttle import Throttle

    with tempfile.TemporaryDirectory() as tmp:
        url = db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        with stage(f"{label}: loading {invoices} tenants and finalized invoices"):
            load(url, invoices)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        server = ctx.Process(target=_serve, args=(child, rate, faults), daemon=True)
        server.start()
        fake_url = parent.recv()
        env = {"BILLCTL_STRIPE_API_KEY": KEY, "BILLCTL_STRIPE_API_BASE": fake_url}
        config = load_config(
            None,
            {"database.url": url, "stripe.max_requests_per_second": str(rate), "stripe.max_retries": "8"},
            env=env,
        )
        app = App(config=config, actor="benchmark")
        released: list[float] = []  # when the throttle let each request go (client clock = server clock here)
        throttle_acquire = Throttle.acquire

        def acquire(self: Throttle) -> float:
            waited = throttle_acquire(self)
            released.append(time.time())
            return waited

        Throttle.acquire = acquire  # type: ignore[method-assign]
        runs, failed = 0, 0
        with stage(f"{label}: push with {workers} workers at <= {rate:g} requests/s"):
            started = time.perf_counter()
            while True:
                runs += 1
                result = svc.push(app, svc.gateway(app), workers=workers)
                failed += len(result.failures)
                if not result.failures or runs == 3:
                    break
            seconds = time.perf_counter() - started
        Throttle.acquire = throttle_acquire  # type: ignore[method-assign]
        parent.send("dump")
        state = parent.recv()
        server.join(timeout=10)
        times = [received for received, _ in state["log"]]
        span = max(times) - min(times)
        achieved = (len(times) - 1) / span if span else 0.0
        peak = max_in_window(times)
        answered = Counter(status for _, status in state["log"])
        injected_429 = state["injected_429"]
        sent_peak = max_in_window(released)
        dupes = duplicates(state, url)
        log = state["log"]
        app.dispose()
    rows = [
        ("invoices / customers", f"{invoices} / {invoices}"),
        ("push runs (re-runs after failures)", f"{runs} ({failed} item failure(s) before the last run)"),
        ("HTTP requests seen by the server", f"{len(log)} in {span:.1f} s ({seconds:.1f} s wall)"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(answered.items(), key=lambda kv: str(kv[0])))),
        ("achieved rate / limit", f"{achieved:.1f} / {rate:g} = {achieved / rate:.3f}"),
        (
            "busiest second, as sent",
            f"{sent_peak} requests ({'never above' if sent_peak <= rate else 'ABOVE'} the limit)",
        ),
        (
            "busiest second, as the server saw it",
            f"{peak} requests ({'never above the limit' if peak <= rate else 'above: arrival jitter'}; "
            f"{answered.get(429, 0) - injected_429} answered 429 by its own limiter)",
        ),
    ]
    rows += [(name, str(count)) for name, count in dupes.items()]
    verdict = sent_peak <= rate and not any(dupes.values())
    if not faults:
        verdict = verdict and achieved >= 0.9 * rate
    rows.append(("verdict", "PASS" if verdict else "FAIL"))
    report(label, rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks stripe_push")
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--fault-invoices", type=int, default=2000, help="invoices in the run with faults (0: skip)")
    parser.add_argument("--rate", type=float, default=100.0, help="stripe.max_requests_per_second")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--faults", type=float, default=0.10, help="share of answers replaced by 429 or 500")
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    args = parser.parse_args(argv)
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    import billctl.stripe.client as client

    client.BACKOFF_INITIAL, client.BACKOFF_MAX = 0.2, 2.0
    print(f"stripe push benchmark: {args.invoices} invoices at <= {args.rate:g} requests/s, FakeStripe on loopback")
    if args.invoices:
        run("clean", args.invoices, args.rate, args.workers, 0.0, args.database_url)
    if args.fault_invoices:
        run(
            f"{args.faults:.0%} injected 429/500",
            args.fault_invoices,
            args.rate,
            args.workers,
            args.faults,
            args.database_url,
        )


if __name__ == "__main__":
    main()
