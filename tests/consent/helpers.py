"""A store with a few pseudonymous patients, ingested through the real pipeline."""

from __future__ import annotations

from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.curation import samples


def patients(store: Store, deidentifier, count: int = 3) -> list[str]:
    pipeline = Pipeline(store, deidentifier)
    for n in range(count):
        for data in samples.series(samples.spec(slices=1, patient_id=f"CANARYX-P{n}")):
            assert pipeline.ingest(data, "test").stored
    return [row[0] for row in store.index.read("SELECT pseudonym FROM patients ORDER BY 1")]
