"""Orthanc, a real PACS no one here wrote, C-STOREs to our SCP on request over its REST API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.scp import StorageScp
from incisive_node.store import Store
from tests.ingest import orthanc_server, samples
from tests.ingest.test_pipeline import assert_no_canary

pytestmark = pytest.mark.skipif(
    orthanc_server.binary() is None, reason="Orthanc is not installed (see .ci/run)"
)


@pytest.fixture
def scp(pipeline: Pipeline) -> Iterator[StorageScp]:
    server = StorageScp(pipeline, allowed_calling_aets=["ORTHANC"], port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def orthanc(tmp_path: Path, scp: StorageScp) -> Iterator[orthanc_server.OrthancServer]:
    folder = tmp_path / "orthanc"
    folder.mkdir()
    server = orthanc_server.start(
        folder, modality_name="incisive", modality_aet="INCISIVE", modality_port=scp.port
    )
    yield server
    server.stop()


def test_orthanc_sends_a_study_that_lands_deidentified(
    orthanc: orthanc_server.OrthancServer, store: Store, pipeline: Pipeline
) -> None:
    study = samples.new_study()
    ids = [orthanc.upload(samples.ct_file(study, n)) for n in (1, 2, 3)]
    sent = orthanc.store_to("incisive", ids)
    assert sent["status"] == 200, sent["body"]
    assert store.index.counts().instances == 3
    assert store.index.counts().patients == 1
    assert_no_canary(store)
    assert pipeline.totals.snapshot()["stored"] == 3


def test_orthanc_is_told_when_an_instance_is_quarantined(
    orthanc: orthanc_server.OrthancServer, store: Store
) -> None:
    refused = orthanc.upload(samples.ct_file(samples.new_study(), 1, burned_in=True))
    sent = orthanc.store_to("incisive", [refused])
    assert sent["status"] != 200  # Orthanc >= 1.6 turns a failed C-STORE into an HTTP error
    assert store.index.quarantined_by_reason() == {"burned-in-annotation": 1}
    assert store.index.counts().instances == 0
