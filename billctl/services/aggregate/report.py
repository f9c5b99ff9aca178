"""What a stream run reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from billctl.services.usage import UsageReport


@dataclass
class AggregateReport(UsageReport):
    """A usage report plus what happened on the stream side."""

    batches: int = 0
    claimed: int = 0  # entries taken over from idle consumers (or from this consumer's earlier life)
    dead_lettered: int = 0  # bad entries dead-lettered by this run (one each, ever: see _after_commit)
    acked: int = 0
    trimmed: int = 0
    vanished: int = 0  # pending entries that no longer existed in the stream when claimed
    pending: int = 0  # dry run: entries delivered to the group but not acknowledged (not counted here)
    seconds: float = 0.0
    dead_reasons: Counter = field(default_factory=Counter)

    def merge(self, other: UsageReport) -> None:
        super().merge(other)
        if isinstance(other, AggregateReport):
            for name in ("batches", "claimed", "dead_lettered", "acked", "trimmed", "vanished", "pending"):
                setattr(self, name, getattr(self, name) + getattr(other, name))
            self.dead_reasons.update(other.dead_reasons)

    def as_dict(self) -> dict[str, object]:
        document = super().as_dict()
        document.update(
            batches=self.batches,
            claimed=self.claimed,
            dead_lettered=self.dead_lettered,
            dead_reasons=dict(self.dead_reasons.most_common()),
            acked=self.acked,
            trimmed=self.trimmed,
            vanished=self.vanished,
            pending=self.pending,
            seconds=round(self.seconds, 3),
            events_per_second=round(self.read / self.seconds) if self.seconds else None,
        )
        return document


_KINDS = (
    ("unknown tenant", "unknown tenant"),
    ("tenant_id is missing", "missing tenant_id"),
    ("units", "bad units"),
    ("in the future", "future ts"),
    ("longer than", "oversized field"),
    ("ts", "bad ts"),
)


def reason_kind(reason: str) -> str:
    """A short category for the summary (the full reason stays on the dead letter)."""
    return next((label for needle, label in _KINDS if needle in reason), "other")
