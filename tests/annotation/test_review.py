"""The review loop: accept, correct and reject change the stored training labels, and the
training data loader reads them; bad input is refused and loses nothing. Through the
library, the HTTP API (a real server on 127.60.1.1) and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import requests
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from incisive_node.annotation.labels import ReviewedLabels
from incisive_node.annotation.model_ref import ModelReference, load_model
from incisive_node.annotation.records import (
    ACCEPTED,
    CORRECTED,
    PENDING,
    REJECTED,
    AnnotationRecords,
    Proposal,
)
from incisive_node.annotation.review import NotPending, ProposalNotFound, ReviewRefused, Reviews
from incisive_node.annotation.review_api import ReviewServer
from incisive_node.annotation.service import Annotator
from incisive_node.annotation.sources import SourceSeries, load_series, series_instances
from incisive_node.deid import Deidentifier
from incisive_node.fhir import validate
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.resample import resize_mask
from incisive_node.fl.store_dataset import StoreDataset
from incisive_node.store import Store
from tests.annotation.conftest import Ingested, ModelFiles, ingest_phantoms
from tests.annotation.seg_checks import check_seg

HOST = "127.60.1.1"
# highdicom's opinion of the de-identifier's one-component pseudonymous patient names
pytestmark = pytest.mark.filterwarnings("ignore:.*intended person name:UserWarning")


def _source(store: Store, series_uid: str) -> SourceSeries:
    source = load_series(store, series_instances(store, series_uid))
    assert source is not None
    return source


def reviewer_seg(source: SourceSeries, masks: np.ndarray, *, segments: int = 1) -> bytes:
    """A SEG as a reviewer's tool would write it: its own UIDs, MANUAL, maybe more segments."""
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label="Lesion" if n == 0 else "Liver",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure
            if n == 0 else codes.SCT.Organ,
            segmented_property_type=codes.SCT.Lesion if n == 0 else codes.SCT.Liver,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n in range(segments)
    ]
    pixels = masks.astype(np.uint8)
    if segments > 1:  # a second, labelled segment where the first one is not
        pixels = np.where(masks > 0, 1, 2).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=list(source.datasets), pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=77, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="Reviewer Tool", manufacturer_model_name="Draw", software_versions="1",
        device_serial_number="1",
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


@pytest.fixture
def proposed(store: Store, deidentifier: Deidentifier, local_segmenter: ModelFiles
             ) -> tuple[list[Ingested], dict[str, Proposal]]:
    studies = ingest_phantoms(store, deidentifier, np.random.default_rng(7), [0.1, 0.4, 0.7, 0.9])
    model = load_model(ModelReference(local_segmenter.path, local_segmenter.sha256))
    summary = Annotator(store, model).annotate_pending()
    return studies, {p.series_uid: p for p in summary.proposed}


def test_review_loop_changes_the_stored_labels(store: Store, proposed: tuple) -> None:
    studies, proposals = proposed
    reviews = Reviews(store)
    records = reviews.records
    assert records.labels("segmentation") == {}
    accepted_study, corrected_study, rejected_study, pending_study = studies

    # Accept: each instance's label is the proposal's own mask.
    accepted = reviews.accept(proposals[accepted_study.series_uid].proposal_id)
    assert accepted.status == ACCEPTED
    labels = records.labels("segmentation")
    assert set(labels) == set(accepted_study.truth)
    assert {item.seg_sha256 for item in labels.values()} == {accepted.seg_sha256}

    # Correct: the reviewer draws the true lesions; our own MANUAL SEG of them is stored.
    source = _source(store, corrected_study.series_uid)
    truth = np.stack([corrected_study.truth[uid] for uid in source.sop_instance_uids])
    original = proposals[corrected_study.series_uid]
    corrected = reviews.correct_masks(original.proposal_id, reviewer_seg(source, truth))
    assert corrected.status == CORRECTED
    assert corrected.final_seg_sha256 not in (None, original.seg_sha256)
    assert corrected.final_lesion_pixels == int(truth.sum())
    stored = check_seg(store.objects.get(corrected.final_seg_sha256), store,
                       corrected_study.series_uid, algorithm="MANUAL")
    assert np.array_equal(stored, truth)
    labels = records.labels("segmentation")
    assert set(labels) == set(accepted_study.truth) | set(corrected_study.truth)
    assert all(labels[uid].seg_sha256 == corrected.final_seg_sha256
               for uid in corrected_study.truth)
    assert all(labels[uid].label == int(corrected_study.truth[uid].any())
               for uid in corrected_study.truth)

    # Reject: no label.
    rejected = reviews.reject(proposals[rejected_study.series_uid].proposal_id)
    assert rejected.status == REJECTED
    assert not set(records.labels("segmentation")) & set(rejected_study.truth)

    # The training data loader reads exactly the settled labels, masks included.
    reviewed = ReviewedLabels(store, "segmentation")
    dataset = StoreDataset(store, reviewed.label_of, 32, mask_of=reviewed.mask_of)
    examples = list(dataset.examples())
    assert len(examples) == len(accepted_study.truth) + len(corrected_study.truth)
    by_uid = {r.sop_instance_uid: r for r in store.index.instances()}
    for uid, mask in corrected_study.truth.items():
        assert np.array_equal(reviewed.mask_of(by_uid[uid]), mask)
    wanted = sorted(resize_mask(m, 32).tobytes() for m in corrected_study.truth.values())
    got = [e.mask.tobytes() for e in examples if e.mask is not None]
    assert all(w in got for w in wanted)
    data = load_site_data(dataset, everyone_consents, "federated-training")
    assert data.train_masks is not None and data.val_masks is not None
    assert len(data.train_masks) + len(data.val_masks) == len(examples)

    # The queue keeps only what is left; a second review of a settled proposal is refused.
    assert [p.series_uid for p in records.queue()] == [pending_study.series_uid]
    with pytest.raises(NotPending, match="accepted, not pending"):
        reviews.reject(accepted.proposal_id)
    with pytest.raises(ProposalNotFound):
        reviews.accept("0" * 32)


def test_a_correction_equal_to_the_proposal_counts_as_accepted(store: Store,
                                                              proposed: tuple) -> None:
    studies, proposals = proposed
    proposal = proposals[studies[0].series_uid]
    source = _source(store, proposal.series_uid)
    same = check_seg(store.objects.get(proposal.seg_sha256), store, proposal.series_uid,
                     algorithm="AUTOMATIC")
    done = Reviews(store).correct_masks(proposal.proposal_id, reviewer_seg(source, same))
    assert done.status == ACCEPTED and done.final_seg_sha256 == proposal.seg_sha256


def test_bad_corrections_are_refused_and_change_nothing(store: Store, proposed: tuple) -> None:
    studies, proposals = proposed
    reviews = Reviews(store)
    target = proposals[studies[0].series_uid]
    other = _source(store, studies[1].series_uid)
    source = _source(store, target.series_uid)
    empty = np.zeros((len(source.datasets), *source.shape), np.uint8)
    cases = {
        "not DICOM": (b"not a dicom file" * 10, "not a readable DICOM Segmentation"),
        "another series": (reviewer_seg(other, np.zeros((3, *other.shape), np.uint8)),
                           "does not reference this series"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ReviewRefused, match=message):
            reviews.correct_masks(target.proposal_id, data)
        assert reviews.records.get(target.proposal_id).status == PENDING, name
    with pytest.raises(ReviewRefused, match="corrected with a SEG"):
        reviews.correct_label(target.proposal_id, 1)
    assert reviews.records.labels("segmentation") == {}
    # A tool's SEG with an extra (organ) segment: the lesion segment is the one taken.
    assert (target.lesion_pixels or 0) > 0
    done = reviews.correct_masks(target.proposal_id, reviewer_seg(source, empty, segments=2))
    assert done.status == CORRECTED and done.final_lesion_pixels == 0


def test_review_api_over_http(store: Store, proposed: tuple) -> None:
    studies, proposals = proposed
    with ReviewServer(store, host=HOST, port=0) as server:
        base = server.url
        queue = requests.get(f"{base}/annotation/queue", timeout=10).json()["proposals"]
        assert len(queue) == len(studies)
        uncertainties = [p["uncertainty"] for p in queue]
        assert uncertainties == sorted(uncertainties, reverse=True)
        assert all("patientPseudonym" not in p for p in queue)
        first = queue[0]["proposalId"]

        seg = requests.get(f"{base}/annotation/proposals/{first}/seg", timeout=10)
        assert seg.status_code == 200 and seg.headers["Content-Type"] == "application/dicom"
        series_uid = queue[0]["seriesUid"]
        check_seg(seg.content, store, series_uid, algorithm="AUTOMATIC")
        fhir = requests.get(f"{base}/annotation/proposals/{first}/observation", timeout=10)
        assert fhir.headers["Content-Type"] == "application/fhir+json"
        assert validate.problems(fhir.json()) == []

        accepted = requests.post(f"{base}/annotation/proposals/{first}/accept", timeout=10)
        assert accepted.status_code == 200 and accepted.json()["status"] == ACCEPTED
        again = requests.post(f"{base}/annotation/proposals/{first}/reject", timeout=10)
        assert again.status_code == 409 and "not pending" in again.json()["error"]
        observed = requests.get(f"{base}/annotation/proposals/{first}/observation",
                                timeout=10).json()
        assert observed["status"] == "final"

        second = queue[1]["proposalId"]
        source = _source(store, queue[1]["seriesUid"])
        truth_study = next(s for s in studies if s.series_uid == queue[1]["seriesUid"])
        truth = np.stack([truth_study.truth[u] for u in source.sop_instance_uids])
        bad = requests.post(f"{base}/annotation/proposals/{second}/correct", data=b"junk",
                            headers={"Content-Type": "application/dicom"}, timeout=10)
        assert bad.status_code == 400 and "DICOM Segmentation" in bad.json()["error"]
        wrong_kind = requests.post(f"{base}/annotation/proposals/{second}/correct",
                                   json={"label": 1}, timeout=10)
        assert wrong_kind.status_code == 400
        corrected = requests.post(f"{base}/annotation/proposals/{second}/correct",
                                  data=reviewer_seg(source, truth),
                                  headers={"Content-Type": "application/dicom"}, timeout=10)
        assert corrected.status_code == 200, corrected.text
        assert corrected.json()["status"] == CORRECTED
        reviewed = requests.get(f"{base}/annotation/proposals/{second}/seg?reviewed=1",
                                timeout=10)
        assert np.array_equal(
            check_seg(reviewed.content, store, source.series_uid, algorithm="MANUAL"), truth)

        third = queue[2]["proposalId"]
        assert requests.post(f"{base}/annotation/proposals/{third}/reject",
                             timeout=10).json()["status"] == REJECTED
        assert requests.get(f"{base}/annotation/proposals/{'f' * 32}",
                            timeout=10).status_code == 404
        assert requests.get(f"{base}/annotation/queue?task=nope", timeout=10).status_code == 400

        metrics = requests.get(f"{base}/metrics", timeout=10).text
        assert 'incisive_annotation_proposals_total{task="segmentation"} 4.0' in metrics
        assert 'incisive_annotation_queue_length{task="segmentation"} 1.0' in metrics
        for outcome in (ACCEPTED, CORRECTED, REJECTED):
            assert (f'incisive_annotation_reviews_total{{outcome="{outcome}",'
                    f'task="segmentation"}} 1.0') in metrics
        ratio = 'incisive_annotation_accepted_unchanged_ratio{task="segmentation"} '
        assert f"{ratio}0.3333333333333333" in metrics
        assert 'incisive_annotation_reviewer_actions_saved_total{task="segmentation"} 1.0' \
            in metrics
        assert 'incisive_annotation_instances_labelled_total{outcome="accepted",' \
            'task="segmentation"} 3.0' in metrics
        # No pseudonym or UID in any metric.
        for proposal in proposals.values():
            assert proposal.patient_pseudonym not in metrics
            assert proposal.series_uid not in metrics
        assert requests.get(f"{base}/healthz", timeout=10).text == "ok\n"
    assert len(AnnotationRecords(store.index).labels("segmentation")) == 6


def test_review_server_refuses_a_non_loopback_address(store: Store) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        ReviewServer(store, host="0.0.0.0", port=0)  # noqa: S104


def test_cli_queue_and_review(tmp_path: Path, deidentifier: Deidentifier,
                              local_segmenter: ModelFiles) -> None:
    store_dir = tmp_path / "store"
    with Store(store_dir) as store:
        studies = ingest_phantoms(store, deidentifier, np.random.default_rng(11), [0.2, 0.8])
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "incisive_node.cli", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    run = cli("annotate", "run", "--store", str(store_dir), "--model",
              str(local_segmenter.path), "--model-sha256", local_segmenter.sha256)
    assert run.returncode == 0, run.stderr
    made = [json.loads(line) for line in run.stdout.splitlines()]
    assert {p["seriesUid"] for p in made} == {s.series_uid for s in studies}
    queue = [json.loads(line) for line in cli("annotate", "queue", "--store",
                                              str(store_dir)).stdout.splitlines()]
    assert [p["uncertainty"] for p in queue] == sorted((p["uncertainty"] for p in made),
                                                       reverse=True)
    done = cli("annotate", "accept", "--store", str(store_dir), queue[0]["proposalId"])
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == ACCEPTED
    refused = cli("annotate", "correct", "--store", str(store_dir), queue[1]["proposalId"],
                  "--label", "1")
    assert refused.returncode == 2 and "corrected with a SEG" in refused.stderr
    with Store(store_dir) as store:
        assert len(AnnotationRecords(store.index).labels("segmentation")) == 3
