"""The site's side of central pooling: one sync pass converges the hub's pool on what the
site's consent and curation allow now. Sites dial the hub; the hub never dials a site.

A pass, in this order:

1. **Learn withdrawals.** `ConsentRegistry.withdrawals_since(cursor)` for central-hpc (for
   any grantee or the pool's grantee) become tombstones in a local outbox, and the cursor
   moves, in one transaction. Only for patients whose copies may be at the hub (a push was
   ever attempted), so the hub never learns of a patient who never donated.
2. **Level check.** A pooled patient who does not permit central-hpc now (a period ended,
   the site default changed, a withdrawal the event stream missed) gets a tombstone too.
3. **Send tombstones**, oldest first. The pool deletes every copy of that (site, keyed id).
   An acknowledged tombstone clears the local record of what was pushed for the patient.
   If the hub is down, the outbox keeps them and the pass ends: nothing is lost, the next
   pass sends them; and nothing is pushed while a deletion is pending.
4. **Withheld copies.** A pushed instance of a permitted patient that is no longer
   releasable (curation failed its series since) is deleted at the pool.
5. **Push** what `consent.release` allows for central-hpc (whole, checked series only) and
   the pool does not have yet, checking the digest the pool computed against our own.

The wire carries the de-identified copies and keyed pseudonyms (the same as PatientID in
the copies), never a raw identifier. The site is named by its certificate, not by us.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from incisive_node.consent import ANY_GRANTEE, CENTRAL_HPC, ConsentRegistry, permitting
from incisive_node.consent.release import releasable
from incisive_node.pool.client import PoolClient, PoolRefused, PoolUnavailable
from incisive_node.store import Store

log = logging.getLogger(__name__)

# Withdrawals are read again from this far before the cursor: an event whose time was taken
# just before the cursor moved, but written just after, is still seen (duplicates are
# ignored by the outbox's key; the level check in step 2 is the last safety net).
LOOKBACK = timedelta(minutes=10)
EPOCH = "1970-01-01T00:00:00.000+00:00"
ATTEMPTED, ACKED = "attempted", "acked"

TABLES = (
    """CREATE TABLE IF NOT EXISTS pool_pushed (
        pool TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        patient TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        dataset TEXT NOT NULL,
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (pool, sop_instance_uid)
    )""",
    "CREATE INDEX IF NOT EXISTS pool_pushed_by_patient ON pool_pushed (pool, patient)",
    """CREATE TABLE IF NOT EXISTS pool_tombstones (
        pool TEXT NOT NULL,
        patient TEXT NOT NULL,
        reason TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        sent_at TEXT,
        deleted INTEGER,
        PRIMARY KEY (pool, patient, requested_at)
    )""",
    """CREATE TABLE IF NOT EXISTS pool_cursor (
        pool TEXT PRIMARY KEY,
        withdrawals_seen TEXT NOT NULL
    )""",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pushed = Counter("incisive_pool_pushed", "Instances the hub's pool acknowledged",
                              registry=registry)
        self.pushed_bytes = Counter("incisive_pool_pushed_bytes",
                                    "Bytes of instances the pool acknowledged", registry=registry)
        self.deletions = Counter(
            "incisive_pool_deletions", "Deletions the pool acknowledged, by kind (patient: a"
            " tombstone; instance: a copy withheld since)", ["kind"], registry=registry)
        self.deleted_copies = Counter("incisive_pool_deleted_copies",
                                      "Copies the pool reported deleted", registry=registry)
        self.failures = Counter(
            "incisive_pool_sync_failures", "Failed pool requests, by stage (push, delete) and"
            " cause (unavailable, refused, digest)", ["stage", "cause"], registry=registry)
        self.passes = Counter("incisive_pool_sync_passes",
                              "Sync passes, by result (complete, incomplete, error)",
                              ["result"], registry=registry)
        self.pending = Gauge("incisive_pool_pending_deletions",
                             "Tombstones waiting for the pool", registry=registry)
        self.last_complete = Gauge("incisive_pool_last_complete_sync_timestamp_seconds",
                                   "When a pass last reached the end", registry=registry)


@dataclass
class SyncReport:
    pushed: int = 0
    tombstones_sent: int = 0
    copies_deleted: int = 0
    withheld_deleted: int = 0
    failures: int = 0
    complete: bool = False
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE (retried on the next pass)"
        text = (f"pool sync {state}: pushed {self.pushed}, tombstones sent "
                f"{self.tombstones_sent} ({self.copies_deleted} copies deleted), withheld "
                f"copies deleted {self.withheld_deleted}, failures {self.failures}")
        return text + "".join(f"\n  {p}" for p in self.problems)


class PoolSync:
    def __init__(self, store: Store, registry: ConsentRegistry, client: PoolClient, *,
                 dataset: str, grantee: str = ANY_GRANTEE,
                 metrics: SyncMetrics | None = None) -> None:
        self.store = store
        self.index = store.index
        self.registry = registry
        self.client = client
        # What was pushed, and what must still be deleted, is remembered per pool, by the
        # name its certificate carries: stable when the hub's address changes.
        self.pool = client.server_name
        self.dataset = dataset
        self.grantee = grantee
        self.metrics = metrics or SyncMetrics(CollectorRegistry())
        self.index.write([(statement, ()) for statement in TABLES])

    # -- the pass ----------------------------------------------------------------------------
    def run_once(self) -> SyncReport:
        report = SyncReport()
        try:
            self._learn_withdrawals()
            self._check_permitted()
            if self._send_tombstones(report) and self._delete_withheld(report):
                report.complete = self._push(report)
        finally:
            self.client.close()
            self.metrics.pending.set(len(self.pending_tombstones()))
        self.metrics.passes.labels("complete" if report.complete else "incomplete").inc()
        if report.complete:
            self.metrics.last_complete.set(time.time())
        return report

    def _learn_withdrawals(self) -> None:
        rows = self.index.read("SELECT withdrawals_seen FROM pool_cursor WHERE pool = ?",
                               (self.pool,))
        seen = rows[0][0] if rows else EPOCH
        since = (datetime.fromisoformat(seen) - LOOKBACK).isoformat(timespec="milliseconds")
        events = [e for e in self.registry.withdrawals_since(since, purpose=CENTRAL_HPC)
                  if e["grantee"] in (ANY_GRANTEE, self.grantee)]
        pooled = set(self._pooled_patients())
        statements = [
            ("INSERT INTO pool_tombstones (pool, patient, reason, requested_at) VALUES"
             " (?, ?, ?, ?) ON CONFLICT (pool, patient, requested_at) DO NOTHING",
             (self.pool, e["patient"], "withdrawn", e["at"]))
            for e in events if e["patient"] in pooled  # seen before: the key ignores it
        ]
        latest = max([seen, *(e["at"] for e in events)])
        statements.append((
            "INSERT INTO pool_cursor VALUES (?, ?) ON CONFLICT (pool) DO UPDATE SET"
            " withdrawals_seen = excluded.withdrawals_seen", (self.pool, latest)))
        self.index.write(statements)

    def _check_permitted(self) -> None:
        allowed = permitting(self.registry, CENTRAL_HPC, self.grantee)
        waiting = {patient for patient, _, _ in self.pending_tombstones()}
        at = now()
        self.index.write([
            ("INSERT INTO pool_tombstones (pool, patient, reason, requested_at) VALUES"
             " (?, ?, ?, ?) ON CONFLICT (pool, patient, requested_at) DO NOTHING",
             (self.pool, patient, "not-permitted", at))
            for patient in self._pooled_patients()
            if patient not in waiting and not allowed(patient)
        ])

    def _send_tombstones(self, report: SyncReport) -> bool:
        for patient, reason, requested_at in self.pending_tombstones():
            try:
                deleted = self.client.delete_patient(patient, reason)
            except (PoolUnavailable, PoolRefused) as failed:
                self._failed(report, "delete", failed)
                return False
            self.index.write([
                ("UPDATE pool_tombstones SET sent_at = ?, deleted = ? WHERE pool = ? AND"
                 " patient = ? AND requested_at = ?",
                 (now(), deleted, self.pool, patient, requested_at)),
                ("DELETE FROM pool_pushed WHERE pool = ? AND patient = ?", (self.pool, patient)),
            ])
            self.metrics.deletions.labels("patient").inc()
            self.metrics.deleted_copies.inc(deleted)
            report.tombstones_sent += 1
            report.copies_deleted += deleted
        return True

    def _delete_withheld(self, report: SyncReport) -> bool:
        allowed = permitting(self.registry, CENTRAL_HPC, self.grantee)
        wanted = {r.sop_instance_uid for r in self._releasable()}
        for sop_uid, patient in self.index.read(
                "SELECT sop_instance_uid, patient FROM pool_pushed WHERE pool = ?"
                " ORDER BY sop_instance_uid", (self.pool,)):
            if sop_uid in wanted or not allowed(patient):
                continue  # wanted; or the patient's tombstone comes on the next pass
            try:
                deleted = self.client.delete_instance(sop_uid, "withheld")
            except (PoolUnavailable, PoolRefused) as failed:
                self._failed(report, "delete", failed)
                return False
            self.index.write([("DELETE FROM pool_pushed WHERE pool = ? AND"
                               " sop_instance_uid = ?", (self.pool, sop_uid))])
            self.metrics.deletions.labels("instance").inc()
            self.metrics.deleted_copies.inc(deleted)
            report.withheld_deleted += deleted
        return True

    def _push(self, report: SyncReport) -> bool:
        have = {sop: (sha, dataset, state) for sop, sha, dataset, state in self.index.read(
            "SELECT sop_instance_uid, sha256, dataset, state FROM pool_pushed WHERE pool = ?",
            (self.pool,))}
        for item in self._releasable():
            if have.get(item.sop_instance_uid) == (item.sha256, self.dataset, ACKED):
                continue
            # Recorded before the request: a copy that may have reached the hub is always
            # known here, so a later withdrawal always sends its tombstone.
            self._record(item.sop_instance_uid, item.patient, item.sha256, ATTEMPTED)
            data = self.store.objects.get(item.sha256)
            try:
                answer = self.client.put_instance(self.dataset, item.sop_instance_uid, data)
            except (PoolUnavailable, PoolRefused) as failed:
                self._failed(report, "push", failed)
                return False
            if answer.get("sha256") != item.sha256:
                self._failed(report, "push", None)
                return False
            self._record(item.sop_instance_uid, item.patient, item.sha256, ACKED)
            self.metrics.pushed.inc()
            self.metrics.pushed_bytes.inc(len(data))
            report.pushed += 1
        return True

    # -- helpers -----------------------------------------------------------------------------
    def _releasable(self) -> list:
        return releasable(self.registry, CENTRAL_HPC, self.grantee, require_curated=True)

    def _pooled_patients(self) -> list[str]:
        return [row[0] for row in self.index.read(
            "SELECT DISTINCT patient FROM pool_pushed WHERE pool = ? ORDER BY 1", (self.pool,))]

    def pending_tombstones(self) -> list[tuple[str, str, str]]:
        """(patient, reason, requested_at) not yet acknowledged by the pool, oldest first."""
        return [tuple(row) for row in self.index.read(
            "SELECT patient, reason, requested_at FROM pool_tombstones WHERE pool = ? AND"
            " sent_at IS NULL ORDER BY requested_at, patient", (self.pool,))]

    def _record(self, sop_uid: str, patient: str, sha: str, state: str) -> None:
        self.index.write([(
            "INSERT INTO pool_pushed VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pool,"
            " sop_instance_uid) DO UPDATE SET patient = excluded.patient, sha256 ="
            " excluded.sha256, dataset = excluded.dataset, state = excluded.state,"
            " at = excluded.at",
            (self.pool, sop_uid, patient, sha, self.dataset, state, now()))])

    def _failed(self, report: SyncReport, stage: str, failed: Exception | None) -> None:
        cause = ("digest" if failed is None else
                 "refused" if isinstance(failed, PoolRefused) else "unavailable")
        self.metrics.failures.labels(stage, cause).inc()
        report.failures += 1
        report.problems.append(f"{stage}: " + (str(failed) if failed is not None else
                                               "the pool stored different bytes"))
        log.warning("pool sync %s failed (%s)", stage, cause)


class PeriodicSync:
    """Runs a pass every `interval` seconds under `serve`, the first one at once."""

    def __init__(self, sync: PoolSync, interval: float = 60.0) -> None:
        self.sync = sync
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pool-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.sync.run_once()
                level = logging.INFO if report.complete else logging.WARNING
                log.log(level, "pool sync: pushed %d, tombstones %d, failures %d",
                        report.pushed, report.tombstones_sent, report.failures)
            except Exception as failure:  # a bug must not stop the next pass
                self.sync.metrics.passes.labels("error").inc()
                log.error("pool sync pass failed (%s)", type(failure).__name__)
            self._stop.wait(self.interval)
