"""Rounds under secure aggregation (SecAgg+): the hub learns the sum, never a site's update.

Flower 1.42 runs SecAgg+ only on its legacy path: `DefaultWorkflow` with a `LegacyContext`,
a legacy strategy, and `SecAggPlusWorkflow` as the fit step. A round is four exchanges
with each site (secure_train.py has the site's side): public keys; each site's two secrets,
Shamir-shared among the others and encrypted for them; the trained weights, multiplied by
the site's example count, quantized and masked; and the shares that remove the masks from
the *sum*. All the hub ever holds of one site's model is a masked vector. The weighted mean
it unmasks is what Flower's legacy FedAvg hands back as the new global model. That is the
point of this module: keep it so. Per-site numbers (examples, losses, accuracy of the model
a site received, its name) still arrive in the clear, as metrics, never weights.

What stays ours, as in rounds.py (and through the same helpers, so the operator reads the
same events):
* which sites a round goes to: every live site not dropped, after waiting for `min_sites`;
* dropping a site that fails or stays silent for `round_timeout_s` in any stage, and
  failing with TooFewSites when too few are left;
* `started`, `round` and `site-dropped` events; the final evaluation (`rounds.finish`);
* pulling replies every 0.2 s (Flower's `send_and_receive` sleeps 3 s, four times a round).

Flower's per-round evaluate stage is left out: as in the plain loop, each train reply carries
the site's score of the model it received, and `finish` scores the final one.

The reconstruction threshold is a majority of the round's sites, and never below
`min_sites`. A semi-honest hub would need that many sites to collude with it to unmask one
site, and the sum survives losing sites as long as that many remain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, cast

from flwr.app import ArrayRecord, Context, Message
from flwr.common import (
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid

from incisive_node.fl.config import SECAGG_MODULUS, TrainingConfig
from incisive_node.fl.metrics import MetricsSink
from incisive_node.fl.rounds import (
    Sites,
    TooFewSites,
    collect_replies,
    emit_round,
    failures,
    finish,
    train_summary,
)
from incisive_node.fl.secure_train import named_arrays


def run_secure_rounds(
    grid: Grid, context: Context, config: TrainingConfig, arrays: ArrayRecord, sink: MetricsSink
) -> ArrayRecord:
    """Train for config.rounds rounds with SecAgg+; return the final global model's arrays."""
    sites = Sites(grid)
    sink.emit(
        "started",
        strategy=config.strategy,
        rounds=config.rounds,
        min_sites=config.min_sites,
        secure_aggregation=True,
    )
    template = arrays.to_torch_state_dict()
    strategy = _FedAvgOverChosenSites(config, ndarrays_to_parameters(arrays.to_numpy_ndarrays()))
    fast = _Grid(grid)
    fit = _SecureFit(config, sites, strategy, fast, sink)
    legacy = LegacyContext(context, ServerConfig(num_rounds=config.rounds), strategy)
    DefaultWorkflow(fit_workflow=fit, evaluate_workflow=_no_evaluation)(cast(Grid, fast), legacy)
    final = compat.arrayrecord_to_parameters(
        legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
    )
    arrays = named_arrays(template, parameters_to_ndarrays(final))
    return finish(grid, sites, arrays, config, sink, fit.pending_train, fit.trained_by)


class _SecureFit:
    """DefaultWorkflow's fit step: one SecAgg+ round over the sites we chose, then our events."""

    def __init__(
        self,
        config: TrainingConfig,
        sites: Sites,
        strategy: _FedAvgOverChosenSites,
        grid: _Grid,
        sink: MetricsSink,
    ) -> None:
        self.config, self.sites, self.strategy, self.grid, self.sink = (
            config, sites, strategy, grid, sink
        )
        self.pending_train: dict[str, float] | None = None  # the previous round's training
        self.trained_by: list[str] = []

    def __call__(self, grid: Grid, context: Context) -> None:
        config = self.config
        round_ = cast(int, context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
        started = time.monotonic()
        nodes = self.sites.wait_for(config.min_sites, config.site_wait_s, round_)
        threshold = max(config.min_sites, len(nodes) // 2 + 1)
        self.strategy.offer(nodes)
        self.grid.failed.clear()
        workflow = _SecAggPlus(
            num_shares=1.0,  # every site holds a share of every other site's secrets
            reconstruction_threshold=threshold,
            max_weight=config.secagg_max_weight,
            clipping_range=config.secagg_clipping_range,
            quantization_range=config.secagg_quantization_range,
            modulus_range=SECAGG_MODULUS,
            timeout=config.round_timeout_s,  # per stage
        )
        workflow(grid, context)
        reports = self.strategy.reports
        for node, metrics in reports.items():
            self.sites.names[node] = str(metrics.get("site", self.sites.name(node)))
        for node, reason in sorted(self.grid.failed.items()):
            self.sites.dropped.add(node)
            self.sink.emit("site-dropped", round=round_, site=self.sites.name(node), reason=reason)
        if not self.strategy.aggregated:
            if not self.grid.failed:
                raise RuntimeError(f"round {round_}: secure aggregation halted with every site")
            left = len(set(nodes) - set(self.grid.failed))
            need = (f"min_sites={config.min_sites}" if threshold == config.min_sites else
                    f"the {threshold} secure aggregation needs (min_sites={config.min_sites})")
            raise TooFewSites(f"round {round_}: {left} site(s) replied, fewer than {need}")
        rows = [_numbers(m) for m in reports.values()]
        names = [self.sites.name(n) for n in reports]
        # The replies scored the model this round started from: round_ - 1's.
        emit_round(self.sink, round_ - 1, self.pending_train, rows, names, "pre")
        self.pending_train = train_summary(rows, time.monotonic() - started)
        self.trained_by = names


def _no_evaluation(grid: Grid, context: Context) -> None:
    """Flower's per-round evaluate stage, not run: the train replies carry the scores."""


def _numbers(metrics: dict[str, Scalar]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


class _FedAvgOverChosenSites(FedAvg):
    """Flower's legacy FedAvg, sent to exactly the sites the round chose rather than a
    sample, keeping what each site reported in the clear."""

    def __init__(self, config: TrainingConfig, initial: Parameters) -> None:
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=config.min_sites,
            min_available_clients=config.min_sites,
            initial_parameters=initial,
        )
        self._config = config
        self._chosen: list[int] = []
        self.reports: dict[int, dict[str, Scalar]] = {}
        self.aggregated = False

    def offer(self, nodes: Iterable[int]) -> None:
        self._chosen, self.reports, self.aggregated = list(nodes), {}, False

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        proxies = {proxy.node_id: proxy for proxy in client_manager.all().values()}
        config: dict[str, Scalar] = {"server-round": server_round}
        if self._config.strategy == "fedprox":  # FedProx: only the sites' loss changes
            config["proximal-mu"] = self._config.proximal_mu
        fit_ins = FitIns(parameters, config)
        return [(proxies[node], fit_ins) for node in self._chosen if node in proxies]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        # SecAgg+ gives every result the unmasked weighted mean as its parameters, so the
        # average computed here is that mean; the rest of each result is its metrics.
        self.reports = {proxy.node_id: dict(res.metrics) for proxy, res in results}
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        self.aggregated = parameters is not None
        return parameters, metrics


class _SecAggPlus(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow, forgetting sites lost before they shared their secrets.

    Flower's keeps every site it sampled, and at unmasking asks the others for shares of
    the lost sites' keys. A site lost in the first two stages never sent any, so the others'
    replies fail and the round is lost. Such a site is in no one's masks (the others mask
    only against sites whose shares they received), so leaving it out is exact.
    `test_units` runs a round that loses a site at setup (flwr 1.42's WorkflowState).
    """

    def setup_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        ok = super().setup_stage(grid, context, state)
        _forget_absent(state)
        return ok

    def share_keys_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        ok = super().share_keys_stage(grid, context, state)
        _forget_absent(state)
        return ok


def _forget_absent(state: WorkflowState) -> None:
    present = set(state.active_node_ids)
    state.sampled_node_ids = present
    state.nid_to_neighbours = {
        node: neighbours & present
        for node, neighbours in state.nid_to_neighbours.items()
        if node in present
    }


class _Grid:
    """The run's Grid as Flower's workflows use it: replies pulled every POLL_S, and which
    site failed which message, and how, for `site-dropped` events."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.failed: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        replies = collect_replies(self._grid, messages, math.inf if timeout is None else timeout)
        for node, reason in failures(messages, replies).items():
            self.failed.setdefault(node, reason)
        return replies
