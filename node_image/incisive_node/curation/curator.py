"""Curation in the ingest pipeline and on demand.

Instance checks run on every de-identified instance before it is stored (`inspect`), and
their results are written once it is stored (`record`). A series has no end-of-series
signal in DICOM, so series checks run when a series has been quiet (no new instance) for
`quiet_seconds` (`curate_pending`, driven by a `Sweeper` under `serve` and once at the end
of a folder import), or on demand (`curate_series`, `incisive-node curate`). A later
instance makes the series pending again, so late slices are never missed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from incisive_node.curation import instance_checks, score, series_checks
from incisive_node.curation.findings import (
    INSTANCE,
    QUARANTINE_REASON,
    SERIES,
    Finding,
)
from incisive_node.curation.metrics import CurationMetrics
from incisive_node.curation.records import CurationRecords, SeriesQuality, now
from incisive_node.store import Store

log = logging.getLogger(__name__)


@dataclass
class InstanceReport:
    series_uid: str
    sop_instance_uid: str
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    quarantine_reason: str | None = None
    quarantine_detail: str = ""


class Curator:
    def __init__(self, store: Store, *, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.records = CurationRecords(store.index)
        self.metrics = CurationMetrics(registry if registry is not None else CollectorRegistry())
        self._series_lock = threading.Lock()

    # -- in the pipeline ---------------------------------------------------------------------
    def inspect(self, result: Any) -> InstanceReport:
        """Check one de-identified Result; never raises (a curation bug must not cost data)."""
        report = InstanceReport(result.series_uid, result.sop_instance_uid)
        try:
            check = instance_checks.check_bytes(result.data)
        except Exception as failure:
            log.error("curation failed on an instance (%s)", type(failure).__name__)
            report.findings.append(Finding("curation-error", type(failure).__name__))
            return report
        report.findings, report.facts = check.findings, check.facts
        if check.quarantine is not None:
            report.quarantine_reason = QUARANTINE_REASON
            report.quarantine_detail = f"{check.quarantine.code}: {check.quarantine.detail}"
            self.metrics.instances.labels("quarantined").inc()
            self.metrics.findings.labels(INSTANCE, check.quarantine.code).inc()
        return report

    def record(self, report: InstanceReport) -> None:
        """Keep the findings of a stored instance; the series becomes pending."""
        try:
            self.records.save_instance(report.series_uid, report.sop_instance_uid,
                                       report.facts, report.findings, now())
        except Exception as failure:
            log.error("curation results not kept (%s)", type(failure).__name__)
            return
        self.metrics.instances.labels("flagged" if report.findings else "clean").inc()
        for finding in report.findings:
            self.metrics.findings.labels(INSTANCE, finding.code).inc()

    # -- series ------------------------------------------------------------------------------
    def curate_series(self, series_uid: str) -> SeriesQuality:
        with self._series_lock:
            at = now()
            facts = self.records.facts(series_uid)
            found = series_checks.check_series(facts)
            per_instance = self.records.instance_findings(series_uid)
            codes = Counter(f.code for _, f in per_instance)
            value, status = score.score(found, codes, len(facts))
            quality = SeriesQuality(series_uid, status, value, len(facts), at, tuple(found))
            self.records.save_series(quality)
            for finding in found:
                self.metrics.findings.labels(SERIES, finding.code).inc()
            self.metrics.score.observe(value)
            self._refresh_gauge()
        return self.records.series(series_uid) or quality

    def curate_pending(self, quiet_seconds: float = 0.0) -> list[SeriesQuality]:
        cutoff = (datetime.now(UTC) - timedelta(seconds=quiet_seconds)).isoformat(
            timespec="milliseconds")
        return [self.curate_series(uid) for uid, latest in self.records.pending()
                if latest <= cutoff]

    def backfill(self) -> int:
        """Check stored instances that never went through curation (older stores)."""
        done = 0
        for series_uid, sop_uid, sha in self.records.unchecked_instances():
            data = self.store.objects.get(sha)
            result = _Stored(data, series_uid, sop_uid)
            report = self.inspect(result)
            if report.quarantine_reason:
                # already stored: flag it, a person decides (quarantine takes incoming files)
                report.findings.append(Finding("pixel-data-undecodable", "found on backfill"))
            self.record(report)
            done += 1
        return done

    def _refresh_gauge(self) -> None:
        counts = self.records.status_counts()
        for status in (score.PASS, score.FLAG, score.FAIL):
            self.metrics.series.labels(status).set(counts.get(status, 0))


@dataclass(frozen=True)
class _Stored:
    data: bytes
    series_uid: str
    sop_instance_uid: str


class Sweeper:
    """Runs series checks for series that have been quiet long enough, in the background."""

    def __init__(self, curator: Curator, *, quiet_seconds: float = 60.0,
                 interval: float = 10.0) -> None:
        self.curator = curator
        self.quiet_seconds = quiet_seconds
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="curation-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.curator.curate_pending(self.quiet_seconds)
            except Exception as failure:
                log.error("series curation sweep failed (%s)", type(failure).__name__)
