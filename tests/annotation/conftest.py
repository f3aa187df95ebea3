"""Fixtures for the annotation tests: the real de-identifier and store, phantom studies
ingested through the real pipeline, and a small segmentation model trained here (the
federated one is trained in test_federated_proposals.py, which is the slow test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from incisive_node.deid import Deidentifier
from incisive_node.fl import segmentation
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.model import build_model
from incisive_node.fl.phantoms import PhantomSite
from incisive_node.fl.server_app import (
    MODEL_CONFIG_FILE,
    MODEL_FILE,
    save_model,
    save_model_config,
)
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.annotation.phantom_dicom import phantom_study
from tests.ingest import postgres_server
from tests.ingest.conftest import deidentifier, index_target  # noqa: F401

SEGMENTATION = TrainingConfig(task="segmentation", image_size=32, width=8, local_epochs=12,
                              learning_rate=0.01, batch_size=16)


@dataclass(frozen=True)
class ModelFiles:
    path: Path
    sha256: str
    config: TrainingConfig


@dataclass(frozen=True)
class Ingested:
    series_uid: str
    truth: dict[str, np.ndarray]  # de-identified SOP Instance UID -> the known lesion mask


def save(model: torch.nn.Module, config: TrainingConfig, folder: Path) -> ModelFiles:
    """As the ServerApp saves a run's final model."""
    folder.mkdir(parents=True, exist_ok=True)
    digest, _ = save_model(model.state_dict(), folder / MODEL_FILE)
    save_model_config(config, digest, folder / MODEL_CONFIG_FILE)
    return ModelFiles(folder / MODEL_FILE, digest, config)


@pytest.fixture(scope="session")
def local_segmenter(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A segmentation model trained in-process on one site's phantoms (a few seconds)."""
    torch.set_num_threads(1)
    model = build_model(SEGMENTATION)
    data = load_site_data(PhantomSite(0, 2, samples=240, image_size=32), everyone_consents, "t")
    assert data.train_masks is not None
    segmentation.train(model, data.train_images, data.train_masks, SEGMENTATION)
    return save(model, SEGMENTATION, tmp_path_factory.mktemp("local-model"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    """A real PostgreSQL on this suite's own loopback address (index_target uses it)."""
    bin_dir = postgres_server.find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`; see .ci/run)")
    server = postgres_server.start(bin_dir, host="127.60.2.1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store") as opened:
        yield opened


def ingest_phantoms(store: Store, engine: Deidentifier, rng: np.random.Generator,
                    styles: list[float], *, slices: int = 3) -> list[Ingested]:
    """One study per style, through the real ingest pipeline (de-identified on arrival)."""
    pipeline = Pipeline(store, engine)
    studies = []
    for style in styles:
        # A patient per study, so the patient-level train/validation split has choices.
        patient = f"PHANTOM^P{rng.integers(10**9)}"
        study = phantom_study(rng, slices=slices, style=style, patient=patient)
        truth: dict[str, np.ndarray] = {}
        series = set()
        for data, made in zip(study.files, study.phantoms, strict=True):
            outcome = pipeline.ingest(data, "test")
            assert outcome.stored, outcome.reason
            assert outcome.sop_instance_uid is not None
            truth[outcome.sop_instance_uid] = made.mask
            series.add(_series_of(store, outcome.sop_instance_uid))
        assert len(series) == 1
        studies.append(Ingested(series.pop(), truth))
    return studies


def _series_of(store: Store, sop_uid: str) -> str:
    rows = store.index.read("SELECT series_uid FROM instances WHERE sop_instance_uid = ?",
                            (sop_uid,))
    return str(rows[0][0])
