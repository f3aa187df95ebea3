"""Recording consent decisions: each change supersedes the patient's earlier decision for
the same purpose and grantee, is kept (history is never rewritten) and is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from incisive_node.consent.audit import AuditSink, IndexAuditLog
from incisive_node.consent.model import (
    ACTIVE,
    ANY_GRANTEE,
    DENY,
    SUPERSEDED,
    ConsentRecord,
    InvalidConsent,
    SitePolicy,
    check_decision,
    check_grantee,
    check_purpose,
)
from incisive_node.ledger import events as ledger_events
from incisive_node.store import Index

_COLUMNS = ("consent_id, patient_pseudonym, purpose, grantee, decision, period_start,"
            " period_end, status, recorded_at, source")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ConsentRegistry:
    def __init__(self, index: Index, policy: SitePolicy | None = None,
                 sinks: Sequence[AuditSink] = ()) -> None:
        self.index = index
        self.policy = policy or SitePolicy()
        self.audit = IndexAuditLog(index)
        # The ledger anchors every change when this process has a recorder (ledger/settings).
        self.sinks = (self.audit, *sinks, *ledger_events.consent_sinks())

    def decide(self, patient: str, purpose: str, decision: str, *, grantee: str = ANY_GRANTEE,
               start: str | None = None, end: str | None = None, source: str = "staff",
               action: str = "decide") -> ConsentRecord:
        check_purpose(purpose)
        check_grantee(grantee)
        check_decision(decision)
        if start and end and end <= start:
            raise InvalidConsent("period end must come after its start")
        if not self.index.read("SELECT 1 FROM patients WHERE pseudonym = ?", (patient,)):
            raise InvalidConsent("no such patient pseudonym in this store")
        record = ConsentRecord(f"consent-{uuid.uuid4().hex}", patient, purpose, grantee,
                               decision, start, end, ACTIVE, now(), source)
        self.index.write([
            ("UPDATE consents SET status = ? WHERE patient_pseudonym = ? AND purpose = ?"
             " AND grantee = ? AND status = ?", (SUPERSEDED, patient, purpose, grantee, ACTIVE)),
            (f"INSERT INTO consents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
             (record.consent_id, patient, purpose, grantee, decision, start, end, ACTIVE,
              record.recorded_at, source)),
        ])
        self._audit(action, record)
        return record

    def withdraw(self, patient: str, purpose: str, *, grantee: str = ANY_GRANTEE,
                 source: str = "staff") -> ConsentRecord:
        """Withdrawal is a deny from now on; data already used cannot be un-used, but the hub
        learns of it (`withdrawals_since`) and deletes its pooled copies."""
        return self.decide(patient, purpose, DENY, grantee=grantee, start=None, end=None,
                           source=source, action="withdraw")

    def records(self, patient: str, *, active_only: bool = True) -> list[ConsentRecord]:
        sql = f"SELECT {_COLUMNS} FROM consents WHERE patient_pseudonym = ?"  # noqa: S608
        params: tuple[Any, ...] = (patient,)
        if active_only:
            sql, params = sql + " AND status = ?", (patient, ACTIVE)
        return [ConsentRecord(*row) for row in self.index.read(sql + " ORDER BY recorded_at",
                                                                params)]

    def active_for_purpose(self, purpose: str) -> list[ConsentRecord]:
        """The active decisions of every patient for one purpose, in one read: enforcement
        over many patients at once (`enforcement.permitting`) judges their periods."""
        rows = self.index.read(
            f"SELECT {_COLUMNS} FROM consents WHERE purpose = ? AND status = ?"  # noqa: S608
            " ORDER BY recorded_at", (purpose, ACTIVE))
        return [ConsentRecord(*row) for row in rows]

    def all_active(self) -> list[ConsentRecord]:
        rows = self.index.read(
            f"SELECT {_COLUMNS} FROM consents WHERE status = ? ORDER BY recorded_at",  # noqa: S608
            (ACTIVE,))
        return [ConsentRecord(*row) for row in rows]

    def withdrawals_since(self, since: str, purpose: str | None = None) -> list[dict[str, str]]:
        """What the hub's operator needs to delete pooled copies: who withdrew what, when."""
        out = []
        for event in self.audit.entries():
            if event["action"] == "withdraw" and event["at"] >= since and (
                    purpose is None or event["purpose"] == purpose):
                out.append({k: event[k] for k in ("patient", "purpose", "grantee", "at")})
        return out

    def _audit(self, action: str, record: ConsentRecord) -> None:
        event = {
            "action": action, "consent_id": record.consent_id, "patient": record.patient,
            "purpose": record.purpose, "grantee": record.grantee, "decision": record.decision,
            "source": record.source, "at": record.recorded_at,
        }
        for sink in self.sinks:
            sink.append(dict(event))
