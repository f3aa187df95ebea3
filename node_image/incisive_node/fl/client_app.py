"""The ClientApp: runs at a site, in a process its SuperNode starts for each message.

Its data comes from the SuperNode's node config, which the site sets when it accepts a
job (the hub never chooses what a site reads):

    site = "site-a"                     name reported with metrics (no PHI)
    data = "synthetic" | "store"
    site-index, site-count, samples     synthetic data only
    store-dir                           the appliance's store (data = "store")
    labels = "module:function"          label_of(InstanceRecord) -> int | None
    consent = "module:function"         consented(patient_pseudonym, purpose) -> bool
    torch-threads = 1                   CPU threads for training (optional)

Real data without a `consent` hook trains on nothing: consent is opt-in by default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import LocalDpMod

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import (
    ConsentCheck,
    SiteData,
    everyone_consents,
    load_site_data,
    nobody_consents,
)
from incisive_node.fl.model import build_model, evaluate, train
from incisive_node.fl.synthetic import SyntheticSite


def local_dp(message: Message, context: Context, call_next: Callable) -> Message:
    """Client-side clipping and Gaussian noise on the update, when the run asks for it."""
    config = TrainingConfig.from_run_config(context.run_config)
    if config.dp != "local":
        return call_next(message, context)
    mod = LocalDpMod(config.dp_clip, config.dp_sensitivity, config.dp_epsilon, config.dp_delta)
    return mod(message, context, call_next)


app = ClientApp()


@app.train(mods=[local_dp])
def train_handler(message: Message, context: Context) -> Message:
    config = TrainingConfig.from_run_config(context.run_config)
    data = site_data(context, config)
    if len(data.train_labels) == 0:
        raise RuntimeError("no consented training examples at this site")
    model = build_model(config)
    model.load_state_dict(message.content["arrays"].to_torch_state_dict())
    before = evaluate(model, data.val_images, data.val_labels)
    mu = float(message.content["config"].get("proximal-mu", 0.0))
    server_round = int(message.content["config"].get("server-round", 0))
    result = train(
        model,
        data.train_images,
        data.train_labels,
        config,
        proximal_mu=mu,
        seed=config.seed * 1000 + server_round,
    )
    metrics = MetricRecord(
        {
            "num-examples": result.examples,
            "train-loss": result.loss,
            "train-seconds": result.seconds,
            "pre-eval-loss": before.loss,
            "pre-eval-accuracy": before.accuracy,
            "pre-eval-examples": before.examples,
        }
    )
    return _reply(message, context, metrics, ArrayRecord(torch_state_dict=model.state_dict()))


@app.evaluate()
def evaluate_handler(message: Message, context: Context) -> Message:
    config = TrainingConfig.from_run_config(context.run_config)
    data = site_data(context, config)
    model = build_model(config)
    model.load_state_dict(message.content["arrays"].to_torch_state_dict())
    result = evaluate(model, data.val_images, data.val_labels)
    metrics = MetricRecord(
        {
            "num-examples": result.examples,
            "eval-loss": result.loss,
            "eval-accuracy": result.accuracy,
            "eval-examples": result.examples,
        }
    )
    return _reply(message, context, metrics, None)


def _reply(
    message: Message, context: Context, metrics: MetricRecord, arrays: ArrayRecord | None
) -> Message:
    content = RecordDict({"metrics": metrics})
    if arrays is not None:
        content["arrays"] = arrays
    content["site"] = ConfigRecord({"name": str(context.node_config.get("site", "unnamed"))})
    return Message(content=content, reply_to=message)


def site_data(context: Context, config: TrainingConfig) -> SiteData:
    node: dict[str, Any] = dict(context.node_config)
    if "torch-threads" in node:
        torch.set_num_threads(int(node["torch-threads"]))
    kind = str(node.get("data", "synthetic"))
    if kind == "synthetic":
        dataset = SyntheticSite(
            site_index=int(node.get("site-index", 0)),
            site_count=int(node.get("site-count", 1)),
            samples=int(node.get("samples", 200)),
            image_size=config.image_size,
            num_classes=config.num_classes,
            seed=config.seed,
        )
        consented: ConsentCheck = everyone_consents
    elif kind == "store":
        from incisive_node.fl.store_dataset import StoreDataset
        from incisive_node.store import Store

        store = Store(node["store-dir"])
        dataset = StoreDataset(store, resolve(str(node["labels"])), config.image_size)
        consented = resolve(str(node["consent"])) if "consent" in node else nobody_consents
    else:
        raise ValueError(f"unknown data source {kind!r}")
    return load_site_data(dataset, consented, config.purpose)


def resolve(reference: str) -> Any:
    """`package.module:attribute` -> the attribute (the site's own hooks)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
