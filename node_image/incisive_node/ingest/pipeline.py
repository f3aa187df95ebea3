"""The one pipeline behind every door: bytes in, de-identify, store; or quarantine, with a
reason. Every call is counted, and no input, however malformed, makes it raise except when
the disk itself refuses both the store and the quarantine area.

Only de-identified values (what the de-identifier's Result carries) reach the index, the
logs and the metrics. Exception messages are never logged: a parser's message can quote the
bytes it choked on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from incisive_node.deid import Quarantined
from incisive_node.ingest.metrics import IngestMetrics, reason_label
from incisive_node.ingest.outcome import QUARANTINED, STORED, Outcome, Totals
from incisive_node.store import InstanceRecord, QuarantineRecord, Store, sha256_hex

log = logging.getLogger(__name__)

# Reasons the pipeline itself gives; the de-identifier brings its own codes.
DEID_ERROR = "deid-error"  # the de-identifier failed in a way it did not foresee
REID_STORE_ERROR = "reid-store-error"  # the re-identification mapping could not be kept
STORE_ERROR = "store-error"  # the de-identified file could not be written or indexed

_DETAIL_LIMIT = 200


class Deidentifies(Protocol):
    def deidentify(self, source: bytes) -> Any: ...


class Curates(Protocol):
    def inspect(self, result: Any) -> Any: ...

    def record(self, report: Any) -> None: ...


class StoreUnavailable(RuntimeError):
    """Neither the store nor the quarantine area could take the file; the door tells the
    sender to try again later (it still holds the file)."""


class Pipeline:
    def __init__(
        self,
        store: Store,
        deidentifier: Deidentifies,
        *,
        registry: CollectorRegistry | None = None,
        keep_mapping: Callable[[Any], None] | None = None,
        curator: Curates | None = None,
    ) -> None:
        """`keep_mapping` receives each Result before it is stored, to put its re-id mapping
        in the encrypted store; if it raises, the input is quarantined, not stored, so that
        nothing is stored that could not be re-identified. `curator` (incisive_node.curation)
        checks each Result first, may send it to quarantine, and records its findings once
        it is stored."""
        self.store = store
        self.deidentifier = deidentifier
        self.metrics = IngestMetrics(registry if registry is not None else CollectorRegistry())
        self.totals = Totals()
        self._keep_mapping = keep_mapping
        self._curator = curator

    def ingest(self, data: bytes, door: str) -> Outcome:
        self.totals.count_received()
        self.metrics.received.labels(door).inc()
        self.metrics.received_bytes.labels(door).inc(len(data))
        outcome: Outcome | None = None
        try:
            outcome = self._ingest(data, door)
            return outcome
        finally:
            self.totals.count(outcome)
            if outcome is None:
                self.metrics.failed.labels(door).inc()

    def quarantine(self, data: bytes, door: str, reason: str, detail: str) -> Outcome:
        """Count and quarantine something a door refused before de-identification."""
        self.totals.count_received()
        self.metrics.received.labels(door).inc()
        self.metrics.received_bytes.labels(door).inc(len(data))
        outcome: Outcome | None = None
        try:
            outcome = self._quarantine(data, door, reason, detail)
            return outcome
        finally:
            self.totals.count(outcome)
            if outcome is None:
                self.metrics.failed.labels(door).inc()

    # -- the steps ---------------------------------------------------------------------------
    def _ingest(self, data: bytes, door: str) -> Outcome:
        try:
            result = self.deidentifier.deidentify(data)
        except Quarantined as refused:
            return self._quarantine(data, door, refused.reason, refused.detail)
        except Exception as failure:  # a bug must cost one file, never the SCP or the batch
            log.error("de-identifier failed (%s); quarantining", _where(failure))
            return self._quarantine(data, door, DEID_ERROR, type(failure).__name__)
        report = self._curator.inspect(result) if self._curator is not None else None
        if report is not None and report.quarantine_reason:
            return self._quarantine(
                data, door, report.quarantine_reason, report.quarantine_detail
            )
        if self._keep_mapping is not None:
            try:
                self._keep_mapping(result)
            except Exception as failure:
                log.error("re-id mapping not kept (%s); quarantining", _where(failure))
                return self._quarantine(data, door, REID_STORE_ERROR, type(failure).__name__)
        try:
            outcome = self._store(result, door)
        except Exception as failure:
            log.error("store failed (%s); quarantining", _where(failure))
            return self._quarantine(data, door, STORE_ERROR, type(failure).__name__)
        if report is not None:
            self._curator.record(report)  # type: ignore[union-attr]
        return outcome

    def _store(self, result: Any, door: str) -> Outcome:
        written = self.store.objects.put(result.data)
        stored_as = self.store.index.add_instance(
            InstanceRecord(
                patient_pseudonym=result.patient_pseudonym,
                study_uid=result.study_uid,
                series_uid=result.series_uid,
                sop_instance_uid=result.sop_instance_uid,
                sop_class_uid=result.sop_class_uid,
                modality=result.modality or None,
                body_part=result.body_part or None,
                sha256=written.sha256,
                size=written.size,
                door=door,
            )
        )
        self.metrics.stored.labels(door, stored_as).inc()
        if written.created:
            self.metrics.store_bytes.inc(written.size)
        log.info("stored %s (%s) from %s", written.sha256[:16], stored_as, door)
        return Outcome(
            STORED,
            written.sha256,
            written.size,
            stored_as=stored_as,
            sop_class_uid=result.sop_class_uid,
            sop_instance_uid=result.sop_instance_uid,
        )

    def _quarantine(self, data: bytes, door: str, reason: str, detail: str) -> Outcome:
        reason = reason_label(reason)
        detail = (detail or "")[:_DETAIL_LIMIT]
        digest = sha256_hex(data)
        try:
            kept = self.store.quarantine.put(data)
            self.store.index.add_quarantine(
                QuarantineRecord(digest, len(data), reason, detail, door)
            )
        except Exception as failure:
            log.critical("quarantine failed (%s): a file from %s not kept", _where(failure), door)
            raise StoreUnavailable("neither stored nor quarantined") from None
        self.metrics.quarantined.labels(door, reason).inc()
        if kept.created:
            self.metrics.quarantine_bytes.inc(kept.size)
        log.warning("quarantined %s from %s: %s", digest[:16], door, reason)
        return Outcome(QUARANTINED, digest, len(data), reason=reason, detail=detail)


def _where(failure: BaseException) -> str:
    """The exception's type and the line that raised it, without its message (which may
    quote the data)."""
    frames = traceback.extract_tb(failure.__traceback__)
    if not frames:
        return type(failure).__name__
    last = frames[-1]
    return f"{type(failure).__name__} at {last.filename}:{last.lineno} in {last.name}"
