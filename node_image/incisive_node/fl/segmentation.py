"""The segmentation task: a tiny U-Net, a Dice + BCE loss, and its training and evaluation
loops (the classifier's are in model.py).

Two 2x2 poolings (so `image_size` stays a multiple of 4, as for the classifier), skip
connections at both scales, one output channel: the lesion's logit per pixel. Small enough
(`width` 8: about 27 K parameters) for a site's CPU to run a round in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.model import TrainResult, fit


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1),
        nn.GroupNorm(min(4, outputs), outputs),
        nn.ReLU(),
        nn.Conv2d(outputs, outputs, 3, padding=1),
        nn.GroupNorm(min(4, outputs), outputs),
        nn.ReLU(),
    )


class TinyUNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.down1 = _block(1, width)
        self.down2 = _block(width, 2 * width)
        self.bottom = _block(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.merge2 = _block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.merge1 = _block(2 * width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        bottom = self.bottom(self.pool(d2))
        u2 = self.merge2(torch.cat([self.up2(bottom), d2], dim=1))
        u1 = self.merge1(torch.cat([self.up1(u2), d1], dim=1))
        return self.head(u1)


def dice_bce_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE for every pixel plus soft Dice over the batch: BCE alone lets a small lesion
    drown in background, Dice alone gives poor gradients early on."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, masks)
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * masks).sum()
    soft_dice = (2 * overlap + 1) / (probabilities.sum() + masks.sum() + 1)
    return bce + (1 - soft_dice)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks of any shape; 1.0 when both are empty."""
    p, t = predicted.astype(bool), truth.astype(bool)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


@dataclass(frozen=True)
class SegEvalResult:
    loss: float
    accuracy: float  # pixel accuracy, so the round loop's accuracy column stays meaningful
    dice: float  # mean over images
    examples: int


def train(
    model: nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    config: TrainingConfig,
    *,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> TrainResult:
    """Local training for `config.local_epochs` epochs (Adam: with BatchNorm and a loss
    of two parts, plain SGD needs many more rounds); FedProx's proximal term as in
    model.train."""
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return fit(model, images, masks, optimiser, dice_bce_loss, config,
               proximal_mu=proximal_mu, seed=seed)


def probabilities(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """(n, 1, size, size) images -> (n, size, size) lesion probabilities."""
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(images)))[:, 0].numpy()


def evaluate(model: nn.Module, images: np.ndarray, masks: np.ndarray) -> SegEvalResult:
    if len(images) == 0:
        return SegEvalResult(0.0, 0.0, 0.0, 0)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        loss = dice_bce_loss(logits, torch.from_numpy(masks)).item()
    predicted = logits[:, 0].numpy() > 0
    truth = masks[:, 0] > 0.5
    accuracy = float((predicted == truth).mean())
    scores = [dice(p, t) for p, t in zip(predicted, truth, strict=True)]
    return SegEvalResult(loss, accuracy, float(np.mean(scores)), len(images))
