"""`GET /aggregates` on the real appliance HTTP server, over a store filled through the real
ingest pipeline: only k-suppressed counts go out, computed afresh on every request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from incisive_node.aggregates_api import AggregatesApi
from incisive_node.annotation.records import AnnotationRecords
from incisive_node.consent import FEDERATED_TRAINING, PERMIT, ConsentRegistry, SitePolicy
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.curation import samples

K = 5
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
# (modality, body part, patients): one single-slice series per patient. The body part with
# a caret is a name typed into the wrong field; de-identification keeps upper-case values.
COHORT = [("CT", "CHEST", 9), ("MR", "SMITH^JOHN", 6), ("PT", "CHEST", 2)]


def numbers(value: Any) -> list[int]:
    """Every count in a reply, k excepted."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for key, v in value.items() if key != "k" for n in numbers(v)]
    return []


@pytest.fixture
def appliance(store: Store, deidentifier) -> Iterator[tuple[str, ConsentRegistry]]:
    pipeline = Pipeline(store, deidentifier)
    n = 0
    for modality, body_part, count in COHORT:
        for _ in range(count):
            spec = samples.spec(slices=1, patient_id=f"CANARYX-P{n}", modality=modality,
                                body_part=body_part)
            assert all(pipeline.ingest(data, "test").stored for data in samples.series(spec))
            n += 1
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    server = IngestHttpServer(pipeline, port=0, apps=[AggregatesApi(registry, k=K)])
    server.start()
    try:
        yield server.url, registry
    finally:
        server.stop()


def _label_ct_series(store: Store, count: int) -> None:
    """Training labels as an accepted review writes them (one per instance)."""
    AnnotationRecords(store.index)
    rows = store.index.read(
        "SELECT i.sop_instance_uid, i.series_uid FROM instances i JOIN series se"
        " ON se.series_uid = i.series_uid WHERE se.modality = 'CT' ORDER BY 1")[:count]
    store.index.write([(
        "INSERT INTO annotation_labels (sop_instance_uid, task, series_uid, label, seg_sha256,"
        " source, proposal_id, labelled_at) VALUES (?, 'classification', ?, 1, NULL,"
        " 'accepted', 'p', '2026-01-01T00:00:00Z')", row) for row in rows])


def test_only_suppressed_counts_go_out(appliance, store: Store) -> None:
    url, registry = appliance
    _label_ct_series(store, 7)
    registry.withdraw(_pseudonyms(store)[0], FEDERATED_TRAINING)
    reply = requests.get(f"{url}/aggregates", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    published = reply.json()
    assert published["k"] == K
    assert all(n >= K for n in numbers(published)), published
    assert published["total"] == 17 and published["consent"]["total"] == 17
    # PT (2) is small; MR (6) is hidden with it, else 17 - 9 = 8 would give PT's 2 away.
    assert published["modality"] == {"CT": 9, "MR": None, "PT": None}
    assert published["body_part"] == {"CHEST": 11, "OTHER": 6}
    assert published["label"] == {"classification:1": {"with": 7, "without": 10}}
    # 16 permit, 1 withdrew: the 1 is small, and 16 would give it away (17 - 16).
    assert published["consent"]["purposes"][FEDERATED_TRAINING] == {"permit": None,
                                                                   "deny": None}
    assert published["consent"]["purposes"]["central-hpc"] == {"deny": 17}
    # Nothing about anyone: no pseudonym, no UID, no header text.
    text = reply.text
    for pseudonym in _pseudonyms(store):
        assert pseudonym not in text
    for (uid,) in store.index.read("SELECT series_uid FROM series"
                                   " UNION SELECT study_uid FROM studies"
                                   " UNION SELECT sop_instance_uid FROM instances"):
        assert uid not in text
    assert "SMITH" not in text and "CANARYX" not in text


def test_each_request_reads_the_store_as_it_is_now(appliance, store: Store) -> None:
    url, registry = appliance
    before = requests.get(f"{url}/aggregates", timeout=10).json()
    assert before["consent"]["purposes"][FEDERATED_TRAINING] == {"permit": 17}
    for pseudonym in _pseudonyms(store)[:5]:
        registry.withdraw(pseudonym, FEDERATED_TRAINING)
    after = requests.get(f"{url}/aggregates", timeout=10).json()
    assert after["consent"]["purposes"][FEDERATED_TRAINING] == {"permit": 12, "deny": 5}


def test_read_only_and_nothing_else_is_answered(appliance) -> None:
    url, _ = appliance
    refused = requests.post(f"{url}/aggregates", data=b"{}", timeout=10)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET"
    assert requests.get(f"{url}/aggregates/x", timeout=10).status_code == 404


def test_k_is_the_servers_and_at_least_two(store: Store) -> None:
    registry = ConsentRegistry(store.index)
    strict = AggregatesApi(registry, k=20).published()
    assert strict["k"] == 20 and strict["total"] is None
    with pytest.raises(ValueError, match="at least 2"):
        AggregatesApi(registry, k=1)
    assert json.loads(json.dumps(strict)) == strict  # plain JSON, as served


def _pseudonyms(store: Store) -> list[str]:
    return [row[0] for row in store.index.read("SELECT pseudonym FROM patients ORDER BY 1")]
