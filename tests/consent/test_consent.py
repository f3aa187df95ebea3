"""Consent decisions, the site default, withdrawal in force at the next filtering, and the
append-only audit log with its ledger hook."""

from __future__ import annotations

import pytest

from incisive_node.consent import (
    CENTRAL_HPC,
    DENY,
    FEDERATED_TRAINING,
    PERMIT,
    ConsentRegistry,
    InvalidConsent,
    SitePolicy,
    filter_permitted,
    offerable_series,
    permits,
)
from incisive_node.store import Store
from tests.consent.helpers import patients


class LedgerStandIn:
    """Stands in for the ledger client (a later issue): records what it is handed."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def append(self, event: dict) -> None:
        self.events.append(event)


def test_withdrawal_excludes_the_patient_from_the_next_filtering(
    store: Store, deidentifier
) -> None:
    a, b, c = patients(store, deidentifier)
    ledger = LedgerStandIn()
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}),
                               sinks=[ledger])
    rows = [(a, "x1"), (b, "x2"), (c, "x3"), (a, "x4")]
    assert filter_permitted(registry, rows, FEDERATED_TRAINING, "*", lambda r: r[0]) == rows
    assert len(offerable_series(registry, FEDERATED_TRAINING, "hub")) == 3
    registry.withdraw(a, FEDERATED_TRAINING)
    assert filter_permitted(registry, rows, FEDERATED_TRAINING, "*", lambda r: r[0]) == [
        (b, "x2"), (c, "x3")]
    assert len(offerable_series(registry, FEDERATED_TRAINING, "hub")) == 2
    assert [e["action"] for e in ledger.events] == ["withdraw"]
    assert registry.withdrawals_since("2000-01-01")[0]["patient"] == a
    assert registry.audit.verify()


def test_site_default_grantee_and_period(store: Store, deidentifier) -> None:
    a, b, _ = patients(store, deidentifier)
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    assert not permits(registry, a, CENTRAL_HPC, "hpc")  # unlisted purposes: deny
    registry.decide(a, CENTRAL_HPC, PERMIT, grantee="hpc", start="2020-01-01", end="2030-01-01")
    assert permits(registry, a, CENTRAL_HPC, "hpc")
    assert not permits(registry, a, CENTRAL_HPC, "someone-else")
    assert not permits(registry, a, CENTRAL_HPC, "hpc", at="2031-06-01")
    registry.decide(b, "project:lung-ai", DENY)
    assert not permits(registry, b, "project:lung-ai", "anyone")
    assert permits(registry, b, FEDERATED_TRAINING, "anyone")


@pytest.mark.parametrize(("purpose", "decision", "grantee"), [
    ("marketing", PERMIT, "*"), ("project:Bad Name", PERMIT, "*"), (CENTRAL_HPC, "maybe", "*"),
    (CENTRAL_HPC, PERMIT, "no spaces allowed"),
])
def test_bad_decisions_are_refused(store: Store, deidentifier, purpose: str, decision: str,
                                   grantee: str) -> None:
    [a] = patients(store, deidentifier, 1)
    with pytest.raises(InvalidConsent):
        ConsentRegistry(store.index).decide(a, purpose, decision, grantee=grantee)


def test_the_audit_log_is_append_only_and_tamper_evident(store: Store, deidentifier) -> None:
    a, b, _ = patients(store, deidentifier)
    registry = ConsentRegistry(store.index)
    registry.decide(a, CENTRAL_HPC, PERMIT)
    registry.decide(b, CENTRAL_HPC, PERMIT)
    registry.withdraw(a, CENTRAL_HPC)
    entries = registry.audit.entries()
    assert [e["action"] for e in entries] == ["decide", "decide", "withdraw"]
    assert registry.audit.verify()
    store.index.write([("UPDATE consent_audit SET event = replace(event, 'withdraw', 'decide')"
                        " WHERE seq = 3", ())])
    assert not registry.audit.verify()
    history = registry.records(a, active_only=False)
    assert [(r.decision, r.status) for r in history] == [(PERMIT, "superseded"),
                                                        (DENY, "active")]
