"""What happened to one incoming file, and running totals over many."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

STORED = "stored"
QUARANTINED = "quarantined"


@dataclass(frozen=True)
class Outcome:
    status: str  # STORED or QUARANTINED
    sha256: str  # of the de-identified file when stored, of the received bytes otherwise
    size: int
    stored_as: str | None = None  # NEW, DUPLICATE or REPLACED (store.records)
    sop_class_uid: str | None = None  # de-identified output's, when stored
    sop_instance_uid: str | None = None
    reason: str | None = None  # short code, when quarantined
    detail: str | None = None  # PHI-free explanation, when quarantined

    @property
    def stored(self) -> bool:
        return self.status == STORED


@dataclass
class Totals:
    """Thread-safe running totals; `received == stored + quarantined + failed` always holds
    once every `ingest` call has returned."""

    received: int = 0
    stored: Counter[str] = field(default_factory=Counter)  # by NEW / DUPLICATE / REPLACED
    quarantined: Counter[str] = field(default_factory=Counter)  # by reason
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_received(self) -> None:
        with self._lock:
            self.received += 1

    def count(self, outcome: Outcome | None) -> None:
        with self._lock:
            if outcome is None:
                self.failed += 1
            elif outcome.stored:
                self.stored[outcome.stored_as or "new"] += 1
            else:
                self.quarantined[outcome.reason or "unknown"] += 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "received": self.received,
                "stored": sum(self.stored.values()),
                "stored_by_outcome": dict(self.stored),
                "quarantined": sum(self.quarantined.values()),
                "quarantined_by_reason": dict(sorted(self.quarantined.items())),
                "failed": self.failed,
            }
