"""Prometheus counters for the ingest pipeline and the store.

Labels carry only the door name and a reason code from a fixed vocabulary, never anything
from the data: a label value that does not look like a reason code is reported as `other`.
Each pipeline registers into its own registry, so tests and tools may run several.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter

_REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")


def reason_label(reason: str) -> str:
    return reason if _REASON.fullmatch(reason) else "other"


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.received = Counter(
            "incisive_ingest_received", "Files that came in, by door", ["door"],
            registry=registry,
        )
        self.received_bytes = Counter(
            "incisive_ingest_received_bytes", "Bytes that came in, by door", ["door"],
            registry=registry,
        )
        self.stored = Counter(
            "incisive_ingest_stored",
            "Instances de-identified and stored, by door and outcome (new, duplicate, replaced)",
            ["door", "outcome"],
            registry=registry,
        )
        self.quarantined = Counter(
            "incisive_ingest_quarantined", "Files quarantined, by door and reason",
            ["door", "reason"], registry=registry,
        )
        self.failed = Counter(
            "incisive_ingest_failed",
            "Files neither stored nor quarantined (the store could not write); the sender"
            " was told to retry",
            ["door"],
            registry=registry,
        )
        self.store_bytes = Counter(
            "incisive_store_bytes", "Bytes of de-identified objects newly written to the store",
            registry=registry,
        )
        self.quarantine_bytes = Counter(
            "incisive_store_quarantine_bytes", "Bytes newly written to the quarantine area",
            registry=registry,
        )
