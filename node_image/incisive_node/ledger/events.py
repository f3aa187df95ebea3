"""The appliance's ledger events: consent changes, re-identifications, datasets registered.

Each hook takes what the appliance has at hand (a pseudonym, a series UID, an audit record)
and passes it to the recorder, which puts only keyed hashes and content digests in the
ledger. Identifiers are hashed under a kind that says what they are, so the site, holding
the object ID key, can find every entry about one pseudonym:

* consent-changed: object `pseudonym` (the patient's); content: the consent audit event,
  canonical JSON, as the `consent_audit` table keeps it; purpose consent-management.
* re-identification: object `pseudonym` (the one looked up); content: the audit line as
  written; purpose clinical-care when granted, audit for a refused or unknown pseudonym.
* dataset-registered: object `series` (the de-identified series UID); content: its
  manifest, canonical JSON `{"instances": [sorted SHA-256 of each stored instance]}`;
  purpose federation-operations.

With no recorder configured (settings.py) every hook does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from . import settings
from .entries import Event, Purpose, canonical_json, utc_now
from .recorder import Recorder

log = logging.getLogger(__name__)

PSEUDONYM, SERIES = "pseudonym", "series"


# -- consent ---------------------------------------------------------------------------------
class ConsentLedgerSink:
    """A consent AuditSink (incisive_node.consent.audit) that anchors each change."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def append(self, event: dict[str, Any]) -> None:
        self.recorder.record(Event.CONSENT_CHANGED, kind=PSEUDONYM, identifier=event["patient"],
                             purpose=Purpose.CONSENT_MANAGEMENT, content=event)


def consent_sinks() -> tuple[ConsentLedgerSink, ...]:
    recorder = settings.shared()
    return (ConsentLedgerSink(recorder),) if recorder is not None else ()


# -- re-identification -----------------------------------------------------------------------
def reidentification(pseudonym: str, outcome: str, audit_line: bytes) -> None:
    recorder = settings.shared()
    if recorder is None:
        return
    purpose = Purpose.CLINICAL_CARE if outcome == "granted" else Purpose.AUDIT
    recorder.record(Event.REIDENTIFICATION, kind=PSEUDONYM, identifier=pseudonym,
                    purpose=purpose, content=audit_line)


# -- datasets --------------------------------------------------------------------------------
_REGISTERED_TABLE = """CREATE TABLE IF NOT EXISTS ledger_datasets (
    series_uid TEXT PRIMARY KEY,
    manifest_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL
)"""


def manifest(instance_hashes: list[str]) -> bytes:
    return canonical_json({"instances": sorted(instance_hashes)})


def register_datasets(index: Any, recorder: Recorder) -> int:
    """Record every curated series whose manifest the ledger has not seen; returns how many.

    Level-based: it compares the store with its own table of what was recorded, so it can
    run at any time and any number of times. A series counts once curation has checked all
    of its instances (a late instance makes it pending again, and it is recorded again,
    with its new manifest, once curation has caught up)."""
    index.write([(_REGISTERED_TABLE, ())])
    curated = index.read(
        "SELECT c.series_uid, c.instances, COUNT(i.sop_instance_uid) FROM curation_series c"
        " JOIN instances i ON i.series_uid = c.series_uid GROUP BY c.series_uid, c.instances"
        " ORDER BY c.series_uid")
    known = dict(index.read("SELECT series_uid, manifest_sha256 FROM ledger_datasets"))
    recorded = 0
    for series_uid, checked, stored in curated:
        if checked != stored:
            continue
        hashes = [row[0] for row in index.read(
            "SELECT sha256 FROM instances WHERE series_uid = ?", (series_uid,))]
        content = hashlib.sha256(manifest(hashes)).hexdigest()
        if known.get(series_uid) == content:
            continue
        recorder.record(Event.DATASET_REGISTERED, kind=SERIES, identifier=series_uid,
                        purpose=Purpose.FEDERATION_OPERATIONS, content_sha256=content)
        index.write([
            ("DELETE FROM ledger_datasets WHERE series_uid = ?", (series_uid,)),
            ("INSERT INTO ledger_datasets VALUES (?, ?, ?)",
             (series_uid, content, utc_now())),
        ])
        recorded += 1
    return recorded


def register_datasets_now(index: Any) -> int:
    """One registration pass with the process's recorder (after a folder import)."""
    recorder = settings.shared()
    if recorder is None:
        return 0
    return register_datasets(index, recorder)


class ApplianceLedger:
    """What a long-running appliance (`incisive-node serve`) runs for the ledger: the shared
    recorder with its metrics in the server's registry and its sender thread, and a sweep
    that registers curated series."""

    def __init__(self, index: Any, registry: CollectorRegistry | None = None,
                 interval: float = 30.0) -> None:
        self.index = index
        self.interval = interval
        self.recorder = settings.install(settings.from_environment(registry=registry))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ApplianceLedger:
        if self.recorder is not None:
            self.recorder.start()
            self._thread = threading.Thread(target=self._run, name="ledger-datasets",
                                            daemon=True)
            self._thread.start()
        return self

    def sweep(self) -> int:
        return register_datasets(self.index, self.recorder) if self.recorder else 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception as failure:  # the sweep is retried; the appliance keeps going
                log.error("dataset registration sweep failed (%s)", type(failure).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.recorder is not None:
            try:
                self.sweep()  # what curation finished since the last sweep
            except Exception as failure:
                log.error("final dataset registration sweep failed (%s)",
                          type(failure).__name__)
            self.recorder.close()
