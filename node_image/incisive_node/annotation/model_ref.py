"""A trained model by reference: the weights file and the SHA-256 it must have.

The expected hash comes from where the model was recorded (the TrainingJob's status, the
ledger's training entry), never from a file beside the weights: a file that sits beside
them can be swapped with them. The bytes are hashed once, and those same bytes are what
torch reads, so nothing can change between the check and the use. A mismatch refuses the
model before any of it is deserialised.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.model import build_model
from incisive_node.fl.server_app import MODEL_CONFIG_FILE

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelRefused(ValueError):
    """The model cannot be used; the message says why."""


class ModelHashMismatch(ModelRefused):
    pass


@dataclass(frozen=True)
class ModelReference:
    path: Path  # model.pt as the ServerApp wrote it (torch.save of the state dict)
    sha256: str  # what the weights must hash to
    # The architecture; None reads model.json beside the weights (written by the ServerApp),
    # which must name the same hash.
    config: TrainingConfig | None = None


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    config: TrainingConfig
    sha256: str

    @property
    def task(self) -> str:
        return self.config.task


def load_model(reference: ModelReference) -> LoadedModel:
    expected = reference.sha256.strip().lower()
    if not _SHA256.fullmatch(expected):
        raise ModelRefused("the expected model hash must be 64 hex digits (SHA-256)")
    try:
        data = Path(reference.path).read_bytes()
    except OSError as error:
        raise ModelRefused(
            f"model file {reference.path} cannot be read: {error.strerror}"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelHashMismatch(
            f"model file {reference.path} has SHA-256 {actual}, expected {expected}:"
            " refusing to use it"
        )
    config = reference.config or _config_beside(Path(reference.path), expected)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model = build_model(config)
        model.load_state_dict(state)
    except Exception as error:  # a verified file of the wrong shape: say which, not its bytes
        raise ModelRefused(
            f"model {expected[:16]} does not load as a {config.task} model of this"
            f" configuration ({type(error).__name__})"
        ) from None
    model.eval()
    return LoadedModel(model, config, expected)


def _config_beside(path: Path, expected: str) -> TrainingConfig:
    # <name>.json first (the hub's model store keeps <sha256>.pt and <sha256>.json), then
    # the run folder's model.json.
    named = path.with_suffix(".json")
    beside = named if named.is_file() else path.with_name(MODEL_CONFIG_FILE)
    try:
        recorded = json.loads(beside.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelRefused(
            f"no readable {named.name} or {MODEL_CONFIG_FILE} beside {path.name}: give the"
            " model's config"
        ) from None
    if str(recorded.get("model_sha256", "")).lower() != expected:
        raise ModelRefused(f"{beside.name} beside {path.name} describes another model")
    return TrainingConfig.from_run_config(recorded.get("config", {}))
