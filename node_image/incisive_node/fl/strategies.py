"""The server strategy a run asks for: FedAvg, FedProx or FedAdam (Flower's message API).

Node sampling is left to the round loop (rounds.py), which knows which sites dropped out,
so every strategy here takes all nodes it is offered (fraction 1, minimum 1).
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy

from incisive_node.fl.config import TrainingConfig

_SAMPLING = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}


def make_strategy(config: TrainingConfig) -> Strategy:
    if config.strategy == "fedprox":
        return FedProx(proximal_mu=config.proximal_mu, **_SAMPLING)
    if config.strategy == "fedadam":
        return FedAdam(
            eta=config.server_learning_rate,
            eta_l=config.learning_rate,
            tau=config.server_tau,
            **_SAMPLING,
        )
    return FedAvg(**_SAMPLING)
