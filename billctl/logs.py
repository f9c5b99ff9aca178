"""Structured logs for unattended runs (a CronJob, a Deployment): one JSON object per line on stderr,
with the run id, the command and the step, so a log pipeline can follow one run.

At a terminal the commands show progress instead; ``RunLog.enabled`` tells which.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from typing import IO, Any


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class RunLog:
    def __init__(
        self, command: str, *, run_id: str | None = None, stream: IO[str] | None = None, enabled: bool | None = None
    ) -> None:
        self.command = command
        self.run_id = run_id or new_run_id()
        self.stream = stream or sys.stderr
        self.enabled = (not self.stream.isatty()) if enabled is None else enabled

    def event(self, message: str, *, level: str = "info", step: str | None = None, **fields: Any) -> None:
        if not self.enabled:
            return
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "command": self.command,
            "run_id": self.run_id,
        }
        if step:
            record["step"] = step
        record["msg"] = message
        record.update(fields)
        self.stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        self.stream.flush()
