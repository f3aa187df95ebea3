"""The image classifier: a small CNN, and the local training and evaluation loops. (The
segmentation task's U-Net and loops are in segmentation.py; `build_model` builds either.)

Kept small on purpose: the federation's plumbing is the subject here, and a site's CPU
must be able to run a round in seconds. `width` and `hidden` scale it up (the benchmark
uses a model of about a megabyte).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from incisive_node.fl.config import TrainingConfig


class SmallCnn(nn.Module):
    def __init__(self, image_size: int, num_classes: int, width: int, hidden: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 2 * width * (image_size // 4) ** 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(config: TrainingConfig) -> nn.Module:
    # The same seed everywhere: every site and the server start from identical weights.
    torch.manual_seed(config.seed)
    if config.task == "segmentation":
        from incisive_node.fl.segmentation import TinyUNet  # it imports this module

        return TinyUNet(config.width)
    return SmallCnn(config.image_size, config.num_classes, config.width, config.hidden)


def model_bytes(model: nn.Module) -> int:
    """Size of the weights uncompressed, as they travel (float32)."""
    return sum(v.numel() * v.element_size() for v in model.state_dict().values())


@dataclass(frozen=True)
class TrainResult:
    loss: float
    examples: int
    seconds: float


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float
    examples: int


def train(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainingConfig,
    *,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> TrainResult:
    """Local SGD for `config.local_epochs` epochs; with `proximal_mu` > 0, FedProx's
    proximal term keeps the weights near the global model the round started from."""
    optimiser = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=0.9)
    return fit(model, images, labels, optimiser, nn.CrossEntropyLoss(), config,
               proximal_mu=proximal_mu, seed=seed)


def fit(
    model: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    optimiser: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainingConfig,
    *,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> TrainResult:
    """The local training loop both tasks share: shuffled mini-batches for
    `config.local_epochs` epochs, plus FedProx's proximal term when `proximal_mu` > 0."""
    started = time.perf_counter()
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    global_params = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(seed)
    model.train()
    total, seen = 0.0, 0
    for _ in range(config.local_epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            objective = loss
            if proximal_mu > 0:
                drift = sum(
                    (p - g).pow(2).sum()
                    for p, g in zip(model.parameters(), global_params, strict=True)
                )
                objective = loss + proximal_mu / 2 * drift
            objective.backward()
            optimiser.step()
            total += loss.item() * len(batch)
            seen += len(batch)
    return TrainResult(total / max(seen, 1), len(x), time.perf_counter() - started)


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> EvalResult:
    if len(images) == 0:
        return EvalResult(0.0, 0.0, 0)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        y = torch.from_numpy(labels)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return EvalResult(loss, accuracy, len(images))
