"""DICOMweb STOW-RS, driven by the dicomweb-client library and by plain `requests`."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.ingest import samples
from tests.ingest.test_pipeline import assert_no_canary

REFERENCED, FAILED, SOP_INSTANCE, FAILURE_REASON = "00081199", "00081198", "00081155", "00081197"


@pytest.fixture
def http(pipeline: Pipeline) -> Iterator[IngestHttpServer]:
    server = IngestHttpServer(pipeline, port=0)
    server.start()
    yield server
    server.stop()


def _multipart(parts: list[tuple[str | None, bytes]]) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    body = b""
    for content_type, data in parts:
        body += f"--{boundary}\r\n".encode()
        if content_type:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f'multipart/related; type="application/dicom"; boundary={boundary}', body


def _uids(sequence: dict | None) -> list[str]:
    items = (sequence or {}).get("Value", [])
    return [item[SOP_INSTANCE]["Value"][0] for item in items if SOP_INSTANCE in item]


def test_dicomweb_client_stores_a_study(
    http: IngestHttpServer, store: Store, pipeline: Pipeline
) -> None:
    study = samples.new_study()
    datasets = [pydicom.dcmread(io.BytesIO(samples.ct_file(study, n))) for n in (1, 2)]
    client = DICOMwebClient(url=http.url)
    response = client.store_instances(datasets=datasets)  # parsed back into a pydicom Dataset
    stored = [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence]
    assert stored == [ds.SOPInstanceUID for ds in datasets]
    assert "FailedSOPSequence" not in response
    assert store.index.counts().instances == 2
    assert_no_canary(store)


def test_mixed_request_gets_202_with_failed_sop_sequence(
    http: IngestHttpServer, store: Store, pipeline: Pipeline
) -> None:
    study = samples.new_study()
    good = samples.ct_dataset(study, 1)
    burned = samples.ct_dataset(study, 2, burned_in=True)
    bad = samples.bad_inputs()
    parts = [
        ("application/dicom", samples.to_bytes(good)),
        (None, samples.to_bytes(burned)),  # RFC 2387: the type parameter is the default
        ("application/dicom", bad["not-dicom"]),
        ("application/dicom", bad["empty"]),
        ("application/dicom", bad["truncated-pixels"]),
        ("application/pdf", b"%PDF-1.4 not an image"),
    ]
    content_type, body = _multipart(parts)
    reply = requests.post(
        f"{http.url}/studies", data=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 202
    assert reply.headers["Content-Type"] == "application/dicom+json"
    dataset = reply.json()
    assert _uids(dataset[REFERENCED]) == [good.SOPInstanceUID]
    failed = dataset[FAILED]["Value"]
    assert len(failed) == 5
    assert all(item[FAILURE_REASON]["Value"] == [0xC000] for item in failed)
    assert burned.SOPInstanceUID in _uids(dataset[FAILED])
    totals = pipeline.totals.snapshot()
    assert totals["received"] == len(parts) == totals["stored"] + totals["quarantined"]
    assert "unsupported-media-type" in store.index.quarantined_by_reason()
    assert_no_canary(store)


def test_nothing_stored_is_409(http: IngestHttpServer) -> None:
    content_type, body = _multipart([("application/dicom", b"junk")])
    reply = requests.post(
        f"{http.url}/studies", data=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 409
    assert FAILED in reply.json()


def test_instances_outside_the_url_study_are_refused(
    http: IngestHttpServer, store: Store
) -> None:
    study = samples.new_study()
    content_type, body = _multipart(
        [("application/dicom", samples.ct_file(study, 1)),
         ("application/dicom", samples.ct_file(samples.new_study(), 2)),
         ("application/dicom", b"junk")]
    )
    reply = requests.post(
        f"{http.url}/studies/{study.study_uid}", data=body,
        headers={"Content-Type": content_type}, timeout=30,
    )
    assert reply.status_code == 202
    assert store.index.quarantined_by_reason() == {"not-dicom": 1, "study-mismatch": 1}


@pytest.mark.parametrize(
    "content_type",
    ["application/dicom", "multipart/related; boundary=x", 'multipart/related; type="image/jpeg"'],
)
def test_wrong_media_type_is_415(http: IngestHttpServer, content_type: str) -> None:
    reply = requests.post(
        f"{http.url}/studies", data=b"x", headers={"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 415


def test_malformed_multipart_is_400(http: IngestHttpServer) -> None:
    reply = requests.post(
        f"{http.url}/studies", data=b"--b\r\nno end",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        timeout=30,
    )
    assert reply.status_code == 400


def test_chunked_upload(http: IngestHttpServer, store: Store) -> None:
    one = samples.ct_file(samples.new_study(), 1)
    content_type, body = _multipart([("application/dicom", one)])
    chunks = (body[i : i + 100] for i in range(0, len(body), 100))
    reply = requests.post(
        f"{http.url}/studies", data=chunks, headers={"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 200
    assert store.index.counts().instances == 1


def test_metrics_and_health(http: IngestHttpServer) -> None:
    content_type, body = _multipart([("application/dicom", b"")])
    requests.post(f"{http.url}/studies", data=body, headers={"Content-Type": content_type},
                  timeout=30)
    assert requests.get(f"{http.url}/healthz", timeout=10).text == "ok\n"
    metrics = requests.get(f"{http.url}/metrics", timeout=10).text
    assert 'incisive_ingest_quarantined_total{door="stow",reason="empty-file"} 1.0' in metrics
    assert 'incisive_ingest_received_total{door="stow"} 1.0' in metrics


def test_the_http_server_listens_on_loopback_only(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        IngestHttpServer(pipeline, host="::", port=0)
