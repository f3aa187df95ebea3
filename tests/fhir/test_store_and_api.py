"""FHIR from a real store: studies ingested through the pipeline (de-identifier and
curator), exported by `incisive-node fhir export` as a validated Bundle, and served by the
appliance's HTTP server with search by modality, body site, date and consent purpose."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests

from incisive_node.cli import main
from incisive_node.consent import FEDERATED_TRAINING, PERMIT, ConsentRegistry
from incisive_node.curation import Curator
from incisive_node.fhir.api import FhirApi
from incisive_node.fhir.validate import problems
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.routes import Request
from incisive_node.store import Store
from tests.conftest import TEST_BLOCK
from tests.curation import samples

HOST = f"127.{TEST_BLOCK}.4.1"


# Identifying values of the source files (beside the CANARYX patient IDs and names).
SOURCE_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                   "FrameOfReferenceUID", "AccessionNumber", "PatientID", "PatientName")


@pytest.fixture
def sources() -> set[str]:
    """Filled by `filled`: every identifying value the ingested files carried."""
    return set()


@pytest.fixture
def filled(store: Store, deidentifier, sources: set[str]) -> Store:
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    for spec in (samples.spec(slices=3, patient_id="CANARYX-A"),
                 samples.spec(slices=2, modality="MG", body_part="BREAST", laterality="R",
                              patient_id="CANARYX-B")):
        for data in samples.series(spec):
            source = pydicom.dcmread(io.BytesIO(data))
            sources.update(str(source.get(k)) for k in SOURCE_KEYWORDS if source.get(k))
            assert pipeline.ingest(data, "test").stored
    curator.curate_pending(0)
    return store


@pytest.fixture
def api(filled: Store, deidentifier) -> Iterator[tuple[str, ConsentRegistry]]:
    registry = ConsentRegistry(filled.index)
    server = IngestHttpServer(Pipeline(filled, deidentifier), port=0,
                              apps=[FhirApi(filled, registry)], host=HOST)
    server.start()
    try:
        yield server.url, registry
    finally:
        server.stop()


def test_export_writes_a_valid_bundle_without_phi(filled: Store, sources: set[str],
                                                  tmp_path: Path) -> None:
    ConsentRegistry(filled.index).decide(
        filled.index.read("SELECT pseudonym FROM patients")[0][0], FEDERATED_TRAINING, PERMIT)
    out = tmp_path / "bundle.json"
    filled.close()
    assert main(["fhir", "export", "--store", str(filled.root), "-o", str(out)]) == 0
    text = out.read_text()
    assert "CANARYX" not in text
    # No source UID, accession number or patient identifier, raw or as a urn:oid.
    assert len(sources) > 10
    assert [value for value in sources if value in text] == []
    bundle = json.loads(text)
    assert problems(bundle) == []
    kinds = sorted({e["resource"]["resourceType"] for e in bundle["entry"]})
    assert kinds == ["Consent", "DiagnosticReport", "ImagingStudy", "Observation", "Patient",
                     "Provenance"]
    studies = [e["resource"] for e in bundle["entry"]
               if e["resource"]["resourceType"] == "ImagingStudy"]
    mg = next(s for s in studies if s["modality"][0]["code"] == "MG")
    assert mg["series"][0]["bodySite"]["code"] == "76752008"
    assert mg["series"][0]["laterality"]["code"] == "419465000"
    assert mg["started"] < "2024-01-15"  # the de-identifier shifted the date back


def test_search_by_modality_body_site_date_and_consent(api) -> None:
    url, registry = api

    def ids(query: str) -> int:
        reply = requests.get(f"{url}/fhir/ImagingStudy?{query}", timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"] == "application/fhir+json"
        return reply.json()["total"]

    assert ids("") == 2
    assert ids("modality=CT") == 1
    assert ids("modality=http://dicom.nema.org/resources/ontology/DCM|MG") == 1
    assert ids("bodysite=816094009") == 1
    assert ids("bodysite=BREAST") == 1
    assert ids("started=ge1900-01-01&started=le2024-12-31") == 2
    assert ids("started=gt2030") == 0
    assert ids(f"consent-purpose={FEDERATED_TRAINING}") == 0  # site default: deny
    patient = registry.index.read("SELECT pseudonym FROM patients ORDER BY 1")[0][0]
    registry.decide(patient, FEDERATED_TRAINING, PERMIT)
    assert ids(f"consent-purpose={FEDERATED_TRAINING}") == 1
    bad = requests.get(f"{url}/fhir/ImagingStudy?colour=red", timeout=10)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_read_by_id_and_other_types(api) -> None:
    url, _ = api
    bundle = requests.get(f"{url}/fhir/ImagingStudy", timeout=10).json()
    study = bundle["entry"][0]["resource"]
    one = requests.get(f"{url}/fhir/ImagingStudy/{study['id']}", timeout=10).json()
    assert one == study
    patient = requests.get(f"{url}/fhir/{study['subject']['reference']}", timeout=10).json()
    assert patient["meta"]["security"][0]["code"] == "PSEUDED"
    observations = requests.get(f"{url}/fhir/Observation", timeout=10).json()
    assert observations["total"] == 2
    assert requests.get(f"{url}/fhir/Patient/NOPE", timeout=10).status_code == 404
    assert requests.get(f"{url}/fhir/metadata", timeout=10).json()["fhirVersion"] == "4.0.1"


def test_cached_resources_follow_every_change_of_the_store(filled: Store, deidentifier) -> None:
    """The cache is rebuilt when (and only when) the store's generation moves: a new study,
    a consent decision, a series re-checked; and then answers as a rebuild would."""
    registry = ConsentRegistry(filled.index)
    cached, rebuilt = FhirApi(filled, registry), FhirApi(filled, registry, cache=False)

    def get(api: FhirApi, target: str) -> dict:
        reply = api.handle(Request.parse("GET", target, {}, b""))
        assert reply is not None and reply.status == 200, target
        return json.loads(reply.body)

    def same(target: str) -> dict:
        answer = get(cached, target)
        assert answer == get(rebuilt, target)
        return answer

    assert same("/fhir/ImagingStudy")["total"] == 2
    same("/fhir/Patient")
    assert cached.cache.builds == 1  # two requests, one build
    curator = Curator(filled)
    pipeline = Pipeline(filled, deidentifier, curator=curator)
    for data in samples.series(samples.spec(slices=2, modality="MR", body_part="KNEE")):
        assert pipeline.ingest(data, "test").stored
    assert same("/fhir/ImagingStudy")["total"] == 3
    assert same("/fhir/Observation")["total"] == 2  # the new series is not checked yet
    curator.curate_pending(0)
    assert same("/fhir/Observation")["total"] == 3
    patient = filled.index.read("SELECT pseudonym FROM patients ORDER BY 1")[0][0]
    assert same("/fhir/Consent")["total"] == 0
    registry.decide(patient, FEDERATED_TRAINING, PERMIT)
    assert same("/fhir/Consent")["total"] == 1
    assert same(f"/fhir/ImagingStudy?consent-purpose={FEDERATED_TRAINING}")["total"] >= 1
    registry.withdraw(patient, FEDERATED_TRAINING)  # consent search is never cached
    assert same(f"/fhir/ImagingStudy?consent-purpose={FEDERATED_TRAINING}")["total"] == 0
    builds = cached.cache.builds
    for _ in range(3):
        same("/fhir/ImagingStudy?modality=MR")
    assert cached.cache.builds == builds
    bad = cached.handle(Request.parse("GET", "/fhir/ImagingStudy?consent-purpose=marketing",
                                      {}, b""))
    assert bad is not None and bad.status == 400
