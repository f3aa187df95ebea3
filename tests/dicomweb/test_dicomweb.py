"""QIDO-RS and WADO-RS against the real appliance HTTP server on 127.0.0.1, driven by the
dicomweb-client library: only de-identified data comes back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dicomweb_client.api import DICOMwebClient

from incisive_node.dicomweb.api import DicomWebApi
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.curation import samples


@pytest.fixture
def served(store: Store, deidentifier) -> Iterator[tuple[DICOMwebClient, Store]]:
    pipeline = Pipeline(store, deidentifier)
    for spec in (samples.spec(slices=3), samples.spec(slices=2, modality="MR",
                                                      body_part="KNEE", patient_id="CANARYX-2")):
        for data in samples.series(spec):
            assert pipeline.ingest(data, "test").stored
    server = IngestHttpServer(pipeline, port=0, apps=[DicomWebApi(store)])
    server.start()
    try:
        yield DICOMwebClient(url=server.url), store
    finally:
        server.stop()


def test_qido_searches_studies_series_and_instances(served) -> None:
    client, store = served
    studies = client.search_for_studies()
    assert len(studies) == 2
    assert all("CANARYX" not in str(s) for s in studies)
    ct = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert len(ct) == 1 and ct[0]["00201208"]["Value"] == [3]
    knee = client.search_for_series(search_filters={"BodyPartExamined": "knee"})
    assert [s["00080060"]["Value"] for s in knee] == [["MR"]]
    study_uid = ct[0]["0020000D"]["Value"][0]
    [series] = client.search_for_series(study_instance_uid=study_uid)
    series_uid = series["0020000E"]["Value"][0]
    instances = client.search_for_instances(study_instance_uid=study_uid,
                                            series_instance_uid=series_uid)
    indexed = {r.sop_instance_uid for r in store.index.instances() if r.series_uid == series_uid}
    assert {i["00080018"]["Value"][0] for i in instances} == indexed
    assert client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"}) == []


def test_wado_retrieves_instances_and_metadata(served) -> None:
    client, store = served
    record = next(iter(store.index.instances()))
    ds = client.retrieve_instance(record.study_uid, record.series_uid, record.sop_instance_uid)
    assert ds.SOPInstanceUID == record.sop_instance_uid
    assert ds.PatientIdentityRemoved == "YES"
    assert "CANARYX" not in str(ds)
    series = client.retrieve_series(record.study_uid, record.series_uid)
    assert len(series) == len([r for r in store.index.instances()
                               if r.series_uid == record.series_uid])
    metadata = client.retrieve_series_metadata(record.study_uid, record.series_uid)
    assert all("7FE00010" not in m for m in metadata)
    assert {m["00080018"]["Value"][0] for m in metadata} >= {record.sop_instance_uid}


def test_unknown_study_is_404(served) -> None:
    client, _ = served
    with pytest.raises(Exception, match="404"):
        client.retrieve_study("1.2.3.4")
