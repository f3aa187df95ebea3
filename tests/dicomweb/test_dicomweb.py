"""QIDO-RS and WADO-RS against the real appliance HTTP server on this session's loopback
block, driven by the dicomweb-client library: only de-identified data comes back, and only
what the patient's consent permits for the purpose the request names, less what curation
failed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from incisive_node.consent import (
    CENTRAL_HPC,
    FEDERATED_TRAINING,
    PERMIT,
    ConsentRegistry,
    SitePolicy,
)
from incisive_node.curation import Curator
from incisive_node.dicomweb.api import DicomWebApi
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.conftest import TEST_BLOCK
from tests.curation import samples

HOST = f"127.{TEST_BLOCK}.3.1"


@dataclass
class Served:
    url: str
    store: Store
    registry: ConsentRegistry

    def client(self, purpose: str | None = FEDERATED_TRAINING, **headers: str
               ) -> DICOMwebClient:
        if purpose is not None:
            headers["Incisive-Purpose"] = purpose
        return DICOMwebClient(url=self.url, headers=headers)

    def patient_of(self, modality: str) -> str:
        return self.store.index.read(
            "SELECT st.patient_pseudonym FROM studies st JOIN series se"
            " ON se.study_uid = st.study_uid WHERE se.modality = ?", (modality,))[0][0]


@pytest.fixture
def served(store: Store, deidentifier) -> Iterator[Served]:
    """Two patients (a CT and an MR study), curated; the site default permits federated
    training and nothing else."""
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    for spec in (samples.spec(slices=3), samples.spec(slices=2, modality="MR",
                                                      body_part="KNEE", patient_id="CANARYX-2")):
        for data in samples.series(spec):
            assert pipeline.ingest(data, "test").stored
    curator.curate_pending(0)
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    server = IngestHttpServer(pipeline, host=HOST, port=0,
                              apps=[DicomWebApi(store, registry)])
    server.start()
    try:
        yield Served(server.url, store, registry)
    finally:
        server.stop()


def test_qido_searches_studies_series_and_instances(served: Served) -> None:
    client = served.client()
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
    indexed = {r.sop_instance_uid for r in served.store.index.instances()
               if r.series_uid == series_uid}
    assert {i["00080018"]["Value"][0] for i in instances} == indexed
    assert client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"}) == []


def test_wado_retrieves_instances_and_metadata(served: Served) -> None:
    client, store = served.client(), served.store
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


def test_unknown_study_is_404(served: Served) -> None:
    with pytest.raises(requests.HTTPError, match="404"):
        served.client().retrieve_study("1.2.3.4")


def test_a_read_without_a_purpose_is_refused_with_400(served: Served) -> None:
    record = next(iter(served.store.index.instances()))
    for path in ("/studies", f"/studies/{record.study_uid}",
                 f"/studies/{record.study_uid}/series/{record.series_uid}/metadata"):
        reply = requests.get(served.url + path, timeout=10)
        assert reply.status_code == 400, path
        assert "Incisive-Purpose" in reply.text
    with pytest.raises(requests.HTTPError, match="400"):
        served.client(purpose=None).search_for_studies()
    bad = requests.get(served.url + "/studies", headers={"Incisive-Purpose": "marketing"},
                       timeout=10)
    assert bad.status_code == 400 and "purpose must be" in bad.text
    bad = requests.get(served.url + "/studies", timeout=10, headers={
        "Incisive-Purpose": FEDERATED_TRAINING, "Incisive-Grantee": "no spaces"})
    assert bad.status_code == 400 and "grantee" in bad.text


def test_only_patients_whose_consent_permits_the_purpose_are_offered(served: Served) -> None:
    training, hpc = served.client(), served.client(CENTRAL_HPC)
    assert len(training.search_for_studies()) == 2
    assert hpc.search_for_studies() == []  # the site default does not permit central-hpc
    mr = served.patient_of("MR")
    served.registry.decide(mr, CENTRAL_HPC, PERMIT)
    [study] = hpc.search_for_studies()
    assert study["00201208"]["Value"] == [2]  # the MR study, and only it
    mr_study = study["0020000D"]["Value"][0]
    assert len(hpc.retrieve_study(mr_study)) == 2
    ct_study = next(s["0020000D"]["Value"][0] for s in training.search_for_studies()
                    if s["0020000D"]["Value"][0] != mr_study)
    with pytest.raises(requests.HTTPError, match="404"):  # exists, but not for this purpose
        hpc.retrieve_study(ct_study)
    # A grantee-specific deny beats the permit for anyone, for that grantee only.
    served.registry.decide(mr, CENTRAL_HPC, "deny", grantee="other-org")
    assert served.client(CENTRAL_HPC, **{"Incisive-Grantee": "other-org"}
                         ).search_for_studies() == []
    assert len(hpc.search_for_studies()) == 1


def test_a_withdrawn_patient_disappears_from_the_next_request(served: Served) -> None:
    client = served.client()
    ct = served.patient_of("CT")
    studies = client.search_for_studies()
    assert len(studies) == 2
    record = next(r for r in served.store.index.instances() if r.patient_pseudonym == ct)
    assert client.retrieve_instance(record.study_uid, record.series_uid,
                                    record.sop_instance_uid).SOPInstanceUID
    served.registry.withdraw(ct, FEDERATED_TRAINING)
    assert [s["00080061"]["Value"] for s in client.search_for_studies()] == [["MR"]]
    assert client.search_for_instances(search_filters={"PatientID": ct}) == []
    with pytest.raises(requests.HTTPError, match="404"):
        client.retrieve_instance(record.study_uid, record.series_uid, record.sop_instance_uid)
    with pytest.raises(requests.HTTPError, match="404"):
        client.retrieve_series_metadata(record.study_uid, record.series_uid)


def test_series_that_curation_failed_are_not_offered(store: Store, deidentifier) -> None:
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    good = samples.spec(slices=3)
    broken = samples.spec(slices=3, study_uid=good.study_uid, series_number=2)
    for data in samples.series(good) + samples.series(broken, "duplicate-positions"):
        assert pipeline.ingest(data, "test").stored
    curator.curate_pending(0)
    assert sorted(curator.records.status_counts().items()) == [("fail", 1), ("pass", 1)]
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    server = IngestHttpServer(pipeline, host=HOST, port=0,
                              apps=[DicomWebApi(store, registry)])
    server.start()
    try:
        client = DICOMwebClient(url=server.url,
                                headers={"Incisive-Purpose": FEDERATED_TRAINING})
        [study] = client.search_for_studies()
        [series] = client.search_for_series()
        failed = next(uid for uid, in store.index.read(
            "SELECT series_uid FROM curation_series WHERE status = 'fail'"))
        assert series["0020000E"]["Value"] != [failed]
        assert study["00201206"]["Value"] == [1]  # the failed series is not counted either
        assert study["00201208"]["Value"] == [3]
        failed_study = store.index.read(
            "SELECT study_uid FROM series WHERE series_uid = ?", (failed,))[0][0]
        with pytest.raises(requests.HTTPError, match="404"):
            client.retrieve_series(failed_study, failed)
    finally:
        server.stop()
