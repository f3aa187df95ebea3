"""The model is used only with the expected hash; the queue puts the most uncertain case
first; classification proposals carry a label with its confidence and become labels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from incisive_node.annotation.inference import predict, self_disagreement
from incisive_node.annotation.labels import ReviewedLabels
from incisive_node.annotation.model_ref import (
    ModelHashMismatch,
    ModelReference,
    ModelRefused,
    load_model,
)
from incisive_node.annotation.observations import observation
from incisive_node.annotation.records import ACCEPTED, CORRECTED, AnnotationRecords
from incisive_node.annotation.review import Reviews
from incisive_node.annotation.service import Annotator
from incisive_node.annotation.sources import load_series, series_instances
from incisive_node.deid import Deidentifier
from incisive_node.fhir import validate
from incisive_node.fl import segmentation
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.model import build_model, train
from incisive_node.fl.resample import resize
from incisive_node.fl.store_dataset import StoreDataset
from incisive_node.fl.synthetic import SyntheticSite
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.annotation.conftest import ModelFiles, ingest_phantoms, save
from tests.annotation.phantom_dicom import phantom_study, series_files

pytestmark = pytest.mark.filterwarnings("ignore:.*intended person name:UserWarning")


def test_a_model_with_the_wrong_hash_is_refused(tmp_path: Path, local_segmenter: ModelFiles,
                                                store: Store, deidentifier: Deidentifier
                                                ) -> None:
    good = load_model(ModelReference(local_segmenter.path, local_segmenter.sha256.upper()))
    assert good.sha256 == local_segmenter.sha256 and good.task == "segmentation"
    # The expected hash differs from the file's.
    wrong = "0" * 64
    with pytest.raises(ModelHashMismatch, match=f"expected {wrong}: refusing to use it"):
        load_model(ModelReference(local_segmenter.path, wrong))
    # The file was altered after the run recorded its hash (one byte appended).
    copy = tmp_path / "copy"
    shutil.copytree(local_segmenter.path.parent, copy)
    tampered = copy / local_segmenter.path.name
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(ModelHashMismatch, match=local_segmenter.sha256):
        load_model(ModelReference(tampered, local_segmenter.sha256))
    # Not a hash at all; a missing file; a model.json that belongs to another model.
    with pytest.raises(ModelRefused, match="64 hex digits"):
        load_model(ModelReference(local_segmenter.path, "abc"))
    with pytest.raises(ModelRefused, match="cannot be read"):
        load_model(ModelReference(tmp_path / "absent.pt", local_segmenter.sha256))
    other = tmp_path / "other"
    shutil.copytree(local_segmenter.path.parent, other)
    (other / "model.json").write_text('{"model_sha256": "' + "1" * 64 + '", "config": {}}')
    with pytest.raises(ModelRefused, match="describes another model"):
        load_model(ModelReference(other / local_segmenter.path.name, local_segmenter.sha256))
    # The right hash, but an architecture the weights do not fit.
    with pytest.raises(ModelRefused, match="does not load as a classification model"):
        load_model(ModelReference(local_segmenter.path, local_segmenter.sha256,
                                  TrainingConfig(task="classification")))

    # Through the CLI: refused with the reason, exit 2, and nothing proposed.
    ingest_phantoms(store, deidentifier, np.random.default_rng(3), [0.5])
    run = subprocess.run(
        [sys.executable, "-m", "incisive_node.cli", "annotate", "run", "--store",
         str(store.root), "--model", str(local_segmenter.path), "--model-sha256", wrong],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert run.returncode == 2
    assert "refused:" in run.stderr and "refusing to use it" in run.stderr
    assert AnnotationRecords(store.index).queue() == []


def test_queue_order_follows_uncertainty(store: Store, deidentifier: Deidentifier,
                                         local_segmenter: ModelFiles) -> None:
    rng = np.random.default_rng(5)
    clear = ingest_phantoms(store, deidentifier, rng, [0.0, 0.3, 0.6, 0.9])
    # A study whose lesions are barely brighter than tissue: the case a reviewer should
    # see first.
    pipeline = Pipeline(store, deidentifier)
    faint_uids = {pipeline.ingest(data, "test").sop_instance_uid
                  for data in phantom_study(rng, style=0.5, faint=True).files}
    model = load_model(ModelReference(local_segmenter.path, local_segmenter.sha256))
    proposals = Annotator(store, model).annotate_pending().proposed
    assert len(proposals) == len(clear) + 1

    queue = AnnotationRecords(store.index).queue()
    assert {p.proposal_id for p in queue} == {p.proposal_id for p in proposals}
    assert [p.uncertainty for p in queue] == sorted((p.uncertainty for p in queue),
                                                    reverse=True)
    # The order is the model's own uncertainty (inference.py), recomputed here.
    for proposal in queue:
        source = load_series(store, series_instances(store, proposal.series_uid))
        assert source is not None
        images = np.stack([resize(f, model.config.image_size) for f in source.pixels])[:, None]
        expected = self_disagreement(segmentation.probabilities(model.model, images))
        assert proposal.uncertainty == pytest.approx(expected, rel=1e-6)
    faint_series = {r.series_uid for r in store.index.instances()
                    if r.sop_instance_uid in faint_uids}
    assert queue[0].series_uid in faint_series
    assert queue[0].uncertainty > queue[1].uncertainty + 0.05
    assert AnnotationRecords(store.index).queue(limit=2) == queue[:2]
    assert AnnotationRecords(store.index).queue(task="classification") == []


def test_classification_proposals_labels_and_confidence(tmp_path: Path, store: Store,
                                                        deidentifier: Deidentifier) -> None:
    torch.set_num_threads(1)
    config = TrainingConfig(image_size=16, local_epochs=8, learning_rate=0.05)
    model = build_model(config)
    data = load_site_data(SyntheticSite(0, 1, samples=400), everyone_consents, "t")
    train(model, data.train_images, data.train_labels, config)
    files = save(model, config, tmp_path / "classifier")

    # Series of two slices of one class each, as a CT would store them.
    pipeline = Pipeline(store, deidentifier)
    truth: dict[str, int] = {}
    held_out = list(SyntheticSite(1, 2, samples=24, seed=99).examples())
    for start in range(0, len(held_out), 2):
        pair = held_out[start:start + 2]
        if pair[0].label != pair[1].label:
            continue
        images = [(e.image * 200).round().astype(np.int16) for e in pair]
        for blob in series_files(images):
            outcome = pipeline.ingest(blob, "test")
            assert outcome.stored
        truth[_series_of(store, outcome.sop_instance_uid)] = pair[0].label
    assert len(truth) >= 4

    loaded = load_model(ModelReference(files.path, files.sha256))
    proposals = Annotator(store, loaded).annotate_pending().proposed
    assert {p.series_uid for p in proposals} == set(truth)
    right = sum(p.label == truth[p.series_uid] for p in proposals)
    assert right / len(proposals) >= 0.75, (right, len(proposals))
    for proposal in proposals:
        assert proposal.seg_sha256 is None and proposal.lesion_pixels is None
        source = load_series(store, series_instances(store, proposal.series_uid))
        assert source is not None
        prediction = predict(loaded, source)
        assert proposal.confidence == pytest.approx(max(prediction.class_probabilities), abs=1e-6)
        ranked = sorted(prediction.class_probabilities, reverse=True)
        assert proposal.uncertainty == pytest.approx(1 - (ranked[0] - ranked[1]), abs=1e-6)
        resource = observation(proposal)
        assert validate.problems(resource) == []
        assert resource["valueCodeableConcept"]["coding"][0]["code"] == str(proposal.label)

    # Review: a correction to the true class where the model was wrong, else acceptance.
    reviews = Reviews(store)
    for bad in ("1", -1, 1.5, True):
        with pytest.raises(ValueError, match="class number"):
            reviews.correct_label(proposals[0].proposal_id, bad)
    for proposal in proposals:
        wanted = truth[proposal.series_uid]
        done = reviews.correct_label(proposal.proposal_id, wanted)
        assert done.status == (ACCEPTED if proposal.label == wanted else CORRECTED)
        assert done.final_label == wanted
    labelled = ReviewedLabels(store, "classification")
    examples = list(StoreDataset(store, labelled.label_of, 16).examples())
    assert len(examples) == 2 * len(truth)
    by_series = {r.sop_instance_uid: r.series_uid for r in store.index.instances()}
    assert all(labelled.labels[uid].label == truth[series] for uid, series in by_series.items())


def _series_of(store: Store, sop_uid: str | None) -> str:
    rows = store.index.read("SELECT series_uid FROM instances WHERE sop_instance_uid = ?",
                            (sop_uid,))
    return str(rows[0][0])
