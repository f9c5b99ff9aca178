"""The run-monthly lock: a lease on ``run_lock``, taken atomically, renewed by heartbeats, taken over
when its holder stopped renewing it (killed) or is gone (same host), or by a retry of the same group
(a Kubernetes Job's next attempt). Each operation is its own short unit of work."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from billctl.db.models import utcnow
from billctl.db.repositories import runs
from billctl.errors import LockHeld
from billctl.services.context import App

LOCK_NAME = "run-monthly"
HEARTBEAT_SECONDS = 5  # at most one heartbeat write per this many seconds (unless forced)


class Lease:
    """A lease on ``run_lock``: taken atomically, renewed by heartbeats, taken over when stale."""

    def __init__(self, app: App, run_id: str, name: str = LOCK_NAME) -> None:
        self.app, self.run_id, self.name = app, run_id, name
        self.stale = timedelta(seconds=app.config.monthly.lock_stale_seconds)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.group = app.config.monthly.lock_group
        self._last_beat = 0.0

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lease was taken over. Raises LockHeld."""
        now = utcnow()
        values = {
            "holder": self.run_id,
            "host": self.host,
            "pid": self.pid,
            "grp": self.group,
            "acquired_at": now,
            "heartbeat_at": now,
        }
        with self.app.uow(readonly=True) as uow:
            row = runs.lock_row(uow.connection, self.name)
        if row is None:
            try:
                with self.app.uow() as uow:
                    runs.insert_lock(uow.connection, self.name, values)
                return None
            except IntegrityError:  # someone else inserted it just now
                with self.app.uow(readonly=True) as uow:
                    row = runs.lock_row(uow.connection, self.name)
        if row is None:  # inserted and released again between the two reads: free now, try once more
            raise LockHeld("another run took the lock at the same moment", hint="wait for it to finish")
        dead = row.host == self.host and row.pid != self.pid and not _alive(row.pid)
        same_group = bool(self.group) and row.grp == self.group
        if not dead and not same_group and row.heartbeat_at > now - self.stale:
            raise LockHeld(
                f"another run holds the lock: run {row.holder} on {row.host} (pid {row.pid}), "
                f"started {row.acquired_at:%Y-%m-%d %H:%M:%S}Z, last heartbeat {row.heartbeat_at:%H:%M:%S}Z",
                hint=f"wait for it; a killed run's lock is taken over after {int(self.stale.total_seconds())} s "
                "without a heartbeat (monthly.lock_stale_seconds)",
            )
        with self.app.uow() as uow:  # compare-and-set on the stale holder
            taken = runs.take_over_lock(uow.connection, self.name, row.holder, row.heartbeat_at, values)
        if not taken:
            raise LockHeld("another run took the lock at the same moment", hint="wait for it to finish")
        if dead:
            why = "its process is gone"
        elif same_group:
            why = f"an earlier attempt of the same group {self.group}"
        else:
            why = f"no heartbeat since {row.heartbeat_at:%Y-%m-%d %H:%M:%S}Z"
        return f"took over the lock of run {row.holder} on {row.host} ({why})"

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < HEARTBEAT_SECONDS:
            return
        with self.app.uow() as uow:
            kept = runs.renew_lock(uow.connection, self.name, self.run_id, utcnow())
        if not kept:
            raise LockHeld("this run lost its lock (another run took it over as stale); stopping")
        self._last_beat = time.monotonic()

    def release(self) -> None:
        with self.app.uow() as uow:
            runs.delete_lock(uow.connection, self.name, self.run_id)

    def holder(self) -> dict[str, Any] | None:
        with self.app.uow(readonly=True) as uow:
            row = runs.lock_row(uow.connection, self.name)
        return None if row is None else dict(row._mapping)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
