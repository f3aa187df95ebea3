"""From a TrainingJob's spec to the Flower run config (incisive_node.fl.config).

Strategy parameters by name: `proximalMu` (FedProx), `eta` and `tau` (FedAdam's server
learning rate and adaptivity), `learningRate` and `batchSize` (the sites' local SGD).
Local differential privacy: `clippingNorm` is both the clipping bound and the sensitivity;
`noiseMultiplier` sigma sets the Gaussian noise's standard deviation to sigma times the
clipping bound, which Flower's LocalDpMod expresses as epsilon = sqrt(2 ln(1.25/delta)) /
sigma at delta = 1e-5 (the classic Gaussian mechanism; Dwork and Roth 2014, Thm A.1).
Secure aggregation (`privacy.secureAggregation`) runs the rounds under SecAgg+, with
FedAvg or FedProx; with FedAdam, or fewer than 2 minSites, the run config refuses it.
What the round loops cannot do is refused rather than ignored: that, and fractionFit below
1 (every live site trains in every round).
"""

from __future__ import annotations

import math
from typing import Any

from incisive_node.fl.config import TrainingConfig

from ..api.v1alpha1.trainingjob import TrainingJobSpec

DP_DELTA = 1e-5
_PARAMETERS = {
    "proximalMu": ("proximal_mu", float),
    "eta": ("server_learning_rate", float),
    "tau": ("server_tau", float),
    "learningRate": ("learning_rate", float),
    "batchSize": ("batch_size", int),
}


class InvalidTrainingSpec(ValueError):
    pass


def training_config(spec: TrainingJobSpec) -> TrainingConfig:
    values: dict[str, Any] = {
        "strategy": spec.strategy.name.lower(),
        "rounds": spec.rounds,
        "min_sites": spec.min_sites,
        "local_epochs": spec.local_epochs,
        "round_timeout_s": float(spec.round_timeout_seconds),
        "site_wait_s": float(spec.site_wait_seconds),
        "purpose": spec.purpose,
    }
    for name, value in spec.strategy.parameters.items():
        if name not in _PARAMETERS:
            known = ", ".join(_PARAMETERS)
            raise InvalidTrainingSpec(f"strategy.parameters.{name} is not known (known: {known})")
        field, kind = _PARAMETERS[name]
        if value <= 0:
            raise InvalidTrainingSpec(f"strategy.parameters.{name} must be positive")
        values[field] = kind(value)
    if spec.strategy.fraction_fit != 1.0:
        raise InvalidTrainingSpec("strategy.fractionFit below 1 is not supported: every live "
                                  "site trains in every round")
    if spec.privacy.secure_aggregation:
        values["secure_aggregation"] = True
    dp = spec.privacy.differential_privacy
    if dp.enabled:
        if dp.noise_multiplier <= 0:
            raise InvalidTrainingSpec("privacy.differentialPrivacy.noiseMultiplier must be "
                                      "above 0 when differential privacy is enabled")
        values.update(
            dp="local",
            dp_clip=dp.clipping_norm,
            dp_sensitivity=dp.clipping_norm,
            dp_delta=DP_DELTA,
            dp_epsilon=math.sqrt(2 * math.log(1.25 / DP_DELTA)) / dp.noise_multiplier,
        )
    try:
        return TrainingConfig(**values)
    except ValueError as error:
        raise InvalidTrainingSpec(str(error)) from error
