"""Enforcement over many patients at once gives the same answer as asking one by one, and
`release` offers only what consent permits now and curation did not refuse."""

from __future__ import annotations

import random

import pytest

from incisive_node.consent import (
    CENTRAL_HPC,
    DENY,
    FEDERATED_TRAINING,
    PERMIT,
    ConsentRegistry,
    InvalidConsent,
    SitePolicy,
    permits,
    permitting,
)
from incisive_node.consent.release import releasable
from incisive_node.curation import Curator
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.consent.helpers import patients
from tests.curation import samples


@pytest.mark.parametrize("seed", range(5))
def test_permitting_agrees_with_permits_for_every_patient(store: Store, deidentifier,
                                                          seed: int) -> None:
    chance = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    people = patients(store, deidentifier, 4)
    policy = SitePolicy({FEDERATED_TRAINING: chance.choice([PERMIT, DENY])})
    registry = ConsentRegistry(store.index, policy)
    for _ in range(12):
        start = chance.choice([None, "2020-01-01", "2030-01-01"])
        end = chance.choice([None, "2025-01-01", "2040-01-01"])
        if start and end and end <= start:
            end = None
        registry.decide(chance.choice(people), chance.choice([FEDERATED_TRAINING, CENTRAL_HPC]),
                        chance.choice([PERMIT, DENY]), grantee=chance.choice(["*", "org-a"]),
                        start=start, end=end)
        if chance.random() < 0.2:
            registry.withdraw(chance.choice(people), FEDERATED_TRAINING)
    for purpose in (FEDERATED_TRAINING, CENTRAL_HPC, "project:x"):
        for grantee in ("*", "org-a", "org-b"):
            for at in (None, "2024-06-01", "2035-06-01"):
                allowed = permitting(registry, purpose, grantee, at)
                assert [allowed(p) for p in people] == [
                    permits(registry, p, purpose, grantee, at) for p in people]
    with pytest.raises(InvalidConsent):
        permitting(registry, "marketing", "*")


def test_release_applies_consent_and_curation(store: Store, deidentifier) -> None:
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    clean = samples.spec(slices=2, patient_id="CANARYX-R1")
    broken = samples.spec(slices=3, patient_id="CANARYX-R1")
    other = samples.spec(slices=2, patient_id="CANARYX-R2")
    for data in (samples.series(clean) + samples.series(broken, "duplicate-positions")
                 + samples.series(other)):
        assert pipeline.ingest(data, "test").stored
    registry = ConsentRegistry(store.index, SitePolicy({CENTRAL_HPC: PERMIT}))
    # Nothing checked yet: offered to DICOMweb readers, not to the pool (require_curated).
    assert len(releasable(registry, CENTRAL_HPC, "*")) == 8
    assert releasable(registry, CENTRAL_HPC, "*", require_curated=True) == []
    curator.curate_pending(0)
    offered = releasable(registry, CENTRAL_HPC, "*", require_curated=True)
    assert len(offered) == 4  # the failed series (4 slices) is withheld
    first = offered[0].patient
    registry.withdraw(first, CENTRAL_HPC)
    assert {r.patient for r in releasable(registry, CENTRAL_HPC, "*")} == {
        r.patient for r in offered} - {first}
    one = offered[-1]
    assert [r.sop_instance_uid for r in releasable(
        registry, CENTRAL_HPC, "*", study=one.study_uid, series=one.series_uid,
        instance=one.sop_instance_uid)] == ([one.sop_instance_uid] if one.patient != first
                                            else [])
