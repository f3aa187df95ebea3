"""The training run's configuration: one frozen dataclass, carried as Flower's run config.

A TrainingJob's spec maps onto `TrainingConfig`; `to_run_config()` gives the key/value pairs
`flwr run --run-config` takes, and the ServerApp and ClientApp read them back with
`from_run_config()`. The app bundle's pyproject.toml lists every key with its default
(bundle.py writes it from this class), because Flower accepts overrides only for keys the
bundle declares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STRATEGIES = ("fedavg", "fedprox", "fedadam")
DP_MODES = ("off", "local")
TASKS = ("classification", "segmentation")
SECAGG_MODULUS = 2**32  # SecAgg+'s masks are uniform modulo this (Flower's default and maximum)


@dataclass(frozen=True)
class TrainingConfig:
    # classification: SmallCnn, one label per image; segmentation: TinyUNet, one lesion
    # mask per image (segmentation.py), scored by Dice.
    task: str = "classification"
    strategy: str = "fedavg"
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    proximal_mu: float = 0.1  # FedProx: weight of the proximal term at the sites
    server_learning_rate: float = 0.05  # FedAdam: eta
    server_tau: float = 1e-3  # FedAdam: adaptivity
    min_sites: int = 2  # fewer live sites than this fails the run
    site_wait_s: float = 120.0  # how long to wait for min_sites to connect
    round_timeout_s: float = 600.0  # a site silent this long in a round is dropped
    final_evaluation: bool = True  # one more message per site to score the final model
    dp: str = "off"  # "local": each site clips its update and adds Gaussian noise
    dp_clip: float = 1.0
    dp_epsilon: float = 10.0
    dp_delta: float = 1e-5
    dp_sensitivity: float = 1.0
    # Secure aggregation (SecAgg+, secure_rounds.py): the hub learns only the weighted sum
    # of the sites' updates. The rest are Flower's defaults for it: each site multiplies its
    # weights by examples / secagg_max_weight (a site with more examples counts as that
    # many), clips them to +-secagg_clipping_range and maps them onto
    # secagg_quantization_range integer levels before masking.
    secure_aggregation: bool = False
    secagg_clipping_range: float = 8.0
    secagg_quantization_range: int = 4194304  # 2**22; the masks work modulo 2**32
    secagg_max_weight: float = 1000.0
    # The model, on square single-channel images: `width` is the first layer's channels
    # (both tasks); `num_classes` and `hidden` size the classifier's head only.
    image_size: int = 16
    num_classes: int = 2
    width: int = 8
    hidden: int = 32
    seed: int = 0
    purpose: str = "federated-training"  # what each patient's consent is checked against
    # Where the ServerApp (at the hub) writes metrics.jsonl and the final model.
    output_dir: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.dp not in DP_MODES:
            raise ValueError(f"dp must be one of {', '.join(DP_MODES)}")
        if self.rounds < 1 or self.local_epochs < 1 or self.min_sites < 1:
            raise ValueError("rounds, local_epochs and min_sites must be at least 1")
        if self.image_size % 4:
            raise ValueError("image_size must be a multiple of 4 (two 2x2 poolings)")
        if self.secure_aggregation:
            self._check_secure_aggregation()

    def _check_secure_aggregation(self) -> None:
        # FedAvg and FedProx aggregate by the weighted mean, which is all the hub can learn
        # under SecAgg+ (FedProx differs only in the sites' loss). FedAdam would also need
        # its server-side optimiser ported to Flower's legacy strategies: not done.
        if self.strategy == "fedadam":
            raise ValueError("secure aggregation works with strategy fedavg or fedprox, "
                             "not fedadam")
        # With one site the "sum" is that site's update (and SecAgg+ refuses to run).
        if self.min_sites < 2:
            raise ValueError("secure aggregation needs min_sites >= 2")
        if self.secagg_clipping_range <= 0 or self.secagg_max_weight <= 0:
            raise ValueError("secagg_clipping_range and secagg_max_weight must be positive")
        if not 0 < self.secagg_quantization_range < SECAGG_MODULUS:
            raise ValueError(f"secagg_quantization_range must be in 1..{SECAGG_MODULUS - 1}")

    def to_run_config(self) -> dict[str, Any]:
        return {_key(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_run_config(cls, values: Mapping[str, Any]) -> TrainingConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name in known:
                kwargs[name] = _coerce(known[name].default, value)
        return cls(**kwargs)


def _key(name: str) -> str:
    return name.replace("_", "-")


def _coerce(default: Any, value: Any) -> Any:
    # TOML (and Flower's run config) may hand back 1 where 1.0 was meant, or the reverse.
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int):
        return int(value)
    return str(value)
