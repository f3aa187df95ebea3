"""Curation and consent tables on both index back ends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from incisive_node.consent import FEDERATED_TRAINING, PERMIT, ConsentRegistry, DonorTokens
from incisive_node.curation import Curator
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.curation import samples


def test_results_and_consent_on_both_back_ends(
    tmp_path: Path, index_target: str | Path, deidentifier
) -> None:
    with Store(tmp_path / "store", index_target) as store:
        curator = Curator(store)
        pipeline = Pipeline(store, deidentifier, curator=curator)
        for data in samples.series(samples.spec(slices=4), "missing-slices"):
            assert pipeline.ingest(data, "test").stored
        [quality] = curator.curate_pending(0)
        assert (quality.status, [f.code for f in quality.findings]) == ("flag", ["missing-slices"])
        assert curator.curate_pending(0) == []
        [patient] = [row[0] for row in store.index.read("SELECT pseudonym FROM patients")]
        registry = ConsentRegistry(store.index)
        registry.decide(patient, FEDERATED_TRAINING, PERMIT)
        registry.withdraw(patient, FEDERATED_TRAINING)
        assert registry.audit.verify() and len(registry.audit.entries()) == 2
        tokens = DonorTokens(store.index)
        assert tokens.resolve(tokens.issue(patient)) == patient
