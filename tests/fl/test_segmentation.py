"""The segmentation task's pieces: the `task` setting, phantoms with known lesions and
non-IID sites, the tiny U-Net, Dice, and masks through the data loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from incisive_node.fl import segmentation
from incisive_node.fl.bundle import build_bundle
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.model import SmallCnn, build_model
from incisive_node.fl.phantoms import TISSUE_HU, PhantomSite, phantom
from incisive_node.fl.resample import resize_mask, upsample
from incisive_node.fl.synthetic import SyntheticSite


def test_task_setting() -> None:
    assert TrainingConfig().task == "classification"
    config = TrainingConfig(task="segmentation", image_size=32)
    assert TrainingConfig.from_run_config(config.to_run_config()) == config
    with pytest.raises(ValueError, match="task must be one of classification, segmentation"):
        TrainingConfig(task="detection")
    assert isinstance(build_model(TrainingConfig()), SmallCnn)
    unet = build_model(config)
    assert isinstance(unet, segmentation.TinyUNet)
    assert unet(torch.zeros(3, 1, 32, 32)).shape == (3, 1, 32, 32)
    assert sum(p.numel() for p in unet.parameters()) < 40_000


def test_the_bundle_declares_the_task_key(tmp_path: Path) -> None:
    text = (build_bundle(tmp_path).app_dir / "pyproject.toml").read_text()
    assert 'task = "classification"' in text


def test_phantom_lesions_are_known_exactly() -> None:
    rng = np.random.default_rng(1)
    for style in (0.0, 1.0):
        made = phantom(rng, 64, style)
        assert made.hu.dtype == np.int16 and made.mask.dtype == np.uint8
        inside = made.hu[made.mask == 1].astype(float)
        assert 0 < made.mask.sum() < 0.2 * made.mask.size
        # Lesions are brighter than tissue, by more on the quiet, high-contrast scanner.
        assert inside.mean() > TISSUE_HU + (40 if style else 100)


def test_phantom_sites_are_non_iid() -> None:
    stats = []
    for index in range(2):
        made = [phantom(np.random.default_rng([0, index]), 64, style)
                for style in (np.clip(np.random.default_rng(index).normal(index, 0.15, 20), 0, 1))]
        stats.append((np.mean([m.mask.mean() for m in made]),
                      np.mean([m.hu[m.mask == 1].mean() for m in made])))
    (area0, bright0), (area1, bright1) = stats
    assert area1 > 1.5 * area0  # site 2: larger lesions
    assert bright1 < bright0 - 40  # ... and fainter ones
    data = load_site_data(PhantomSite(0, 2, samples=40, image_size=32), everyone_consents, "x")
    assert data.train_masks is not None and data.val_masks is not None
    assert data.train_masks.shape == (len(data.train_images), 1, 32, 32)
    assert set(np.unique(data.train_masks)) <= {0.0, 1.0}
    assert (data.train_labels == 1).all()  # every phantom has a lesion


def test_classification_data_has_no_masks() -> None:
    data = load_site_data(SyntheticSite(0, 2, samples=40), everyone_consents, "x")
    assert data.train_masks is None and data.val_masks is None


def test_dice() -> None:
    a = np.zeros((4, 4), np.uint8)
    assert segmentation.dice(a, a) == 1.0  # both empty
    b = a.copy()
    b[:2] = 1
    assert segmentation.dice(b, a) == 0.0
    c = a.copy()
    c[:1] = 1
    assert segmentation.dice(b, c) == pytest.approx(2 * 4 / (8 + 4))


def test_resampling_round_trip() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 10:30] = 1
    small = resize_mask(mask, 32)
    assert small.shape == (32, 32) and 90 <= small.sum() <= 110
    back = upsample(small[None].astype(np.float32), (64, 64))[0] > 0.5
    assert segmentation.dice(back, mask) > 0.9


def test_local_training_learns_the_lesions() -> None:
    torch.set_num_threads(1)
    config = TrainingConfig(task="segmentation", image_size=32, local_epochs=12,
                            learning_rate=0.01, batch_size=16)
    data = load_site_data(PhantomSite(0, 1, samples=200, image_size=32), everyone_consents, "x")
    assert data.train_masks is not None and data.val_masks is not None
    model = build_model(config)
    before = segmentation.evaluate(model, data.val_images, data.val_masks)
    result = segmentation.train(model, data.train_images, data.train_masks, config)
    after = segmentation.evaluate(model, data.val_images, data.val_masks)
    assert result.examples == len(data.train_images)
    assert before.dice < 0.2 < 0.7 < after.dice, (before, after)
    assert after.loss < before.loss
