"""The ClientApp: runs at a site, in a process its SuperNode starts for each message.

Its data comes from the SuperNode's node config, which the site sets when it accepts a
job (the hub never chooses what a site reads):

    site = "site-a"                     name reported with metrics (no PHI)
    data = "synthetic" | "store"
    site-index, site-count, samples     synthetic data only (phantoms for segmentation)
    store-dir                           the appliance's store (data = "store")
    labels = "module:function"          label_of(InstanceRecord) -> int | None
           | "annotation"               what reviewers accepted or corrected (annotation/)
    masks = "module:function"           segmentation: mask_of(InstanceRecord) -> array | None
                                        (with labels = "annotation", the reviewed masks)
    consent = "registry"                the store's consent registry (docs/consent.md)
            | "module:function"         consented(patient_pseudonym, purpose) -> bool
    modalities = "CT,MR"                the job's dataQuery, store data only: instances
    body-parts = "CHEST"                whose header has one of these (absent: all)
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

from incisive_node.fl import segmentation
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import (
    ConsentCheck,
    SiteData,
    SiteDataset,
    everyone_consents,
    load_site_data,
    nobody_consents,
)
from incisive_node.fl.model import build_model, evaluate, train
from incisive_node.fl.phantoms import PhantomSite
from incisive_node.fl.secure_train import secure_aggregation
from incisive_node.fl.synthetic import SyntheticSite


def local_dp(message: Message, context: Context, call_next: Callable) -> Message:
    """Client-side clipping and Gaussian noise on the update, when the run asks for it."""
    config = TrainingConfig.from_run_config(context.run_config)
    if config.dp != "local":
        return call_next(message, context)
    mod = LocalDpMod(config.dp_clip, config.dp_sensitivity, config.dp_epsilon, config.dp_delta)
    return mod(message, context, call_next)


app = ClientApp()


# Outermost first: under secure aggregation the site's update is noised (local DP) before
# SecAgg+ masks it.
@app.train(mods=[secure_aggregation, local_dp])
def train_handler(message: Message, context: Context) -> Message:
    config = TrainingConfig.from_run_config(context.run_config)
    data = site_data(context, config)
    if len(data.train_labels) == 0:
        raise RuntimeError("no consented training examples at this site")
    train_loop, evaluate_loop, train_targets, val_targets = _task(config, data)
    model = build_model(config)
    model.load_state_dict(message.content["arrays"].to_torch_state_dict())
    before = evaluate_loop(model, data.val_images, val_targets)
    mu = float(message.content["config"].get("proximal-mu", 0.0))
    server_round = int(message.content["config"].get("server-round", 0))
    result = train_loop(
        model,
        data.train_images,
        train_targets,
        config,
        proximal_mu=mu,
        seed=config.seed * 1000 + server_round,
    )
    metrics = MetricRecord(
        {
            "num-examples": result.examples,
            "train-loss": result.loss,
            "train-seconds": result.seconds,
            **_scores("pre-eval", before),
        }
    )
    return _reply(message, context, metrics, ArrayRecord(torch_state_dict=model.state_dict()))


@app.evaluate()
def evaluate_handler(message: Message, context: Context) -> Message:
    config = TrainingConfig.from_run_config(context.run_config)
    data = site_data(context, config)
    _, evaluate_loop, _, val_targets = _task(config, data)
    model = build_model(config)
    model.load_state_dict(message.content["arrays"].to_torch_state_dict())
    result = evaluate_loop(model, data.val_images, val_targets)
    metrics = MetricRecord({"num-examples": result.examples, **_scores("eval", result)})
    return _reply(message, context, metrics, None)


def _task(config: TrainingConfig, data: SiteData) -> tuple[Any, Any, Any, Any]:
    """The training and evaluation loops for the run's task, and what they learn from."""
    if config.task == "segmentation":
        if data.train_masks is None or data.val_masks is None:
            raise RuntimeError("segmentation needs a lesion mask for every example")
        return segmentation.train, segmentation.evaluate, data.train_masks, data.val_masks
    return train, evaluate, data.train_labels, data.val_labels


def _scores(prefix: str, result: Any) -> dict[str, float]:
    scores = {
        f"{prefix}-loss": result.loss,
        f"{prefix}-accuracy": result.accuracy,
        f"{prefix}-examples": result.examples,
    }
    if isinstance(result, segmentation.SegEvalResult):
        scores[f"{prefix}-dice"] = result.dice
    return scores


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
    dataset: SiteDataset
    if kind == "synthetic" and config.task == "segmentation":
        dataset = PhantomSite(
            site_index=int(node.get("site-index", 0)),
            site_count=int(node.get("site-count", 1)),
            samples=int(node.get("samples", 200)),
            image_size=config.image_size,
            seed=config.seed,
        )
        consented: ConsentCheck = everyone_consents
    elif kind == "synthetic":
        dataset = SyntheticSite(
            site_index=int(node.get("site-index", 0)),
            site_count=int(node.get("site-count", 1)),
            samples=int(node.get("samples", 200)),
            image_size=config.image_size,
            num_classes=config.num_classes,
            seed=config.seed,
        )
        consented = everyone_consents
    elif kind == "store":
        from incisive_node.fl.store_dataset import StoreDataset
        from incisive_node.store import Store

        store = Store(node["store-dir"])
        label_of, mask_of = _labels(node, store, config)
        dataset = StoreDataset(store, label_of, config.image_size, mask_of=mask_of,
                               modalities=_listed(node, "modalities"),
                               body_parts=_listed(node, "body-parts"))
        consented = _consent(node, store)
    else:
        raise ValueError(f"unknown data source {kind!r}")
    return load_site_data(dataset, consented, config.purpose)


def _listed(node: dict[str, Any], key: str) -> frozenset[str]:
    """A comma-separated node-config list, upper case (DICOM code strings)."""
    return frozenset(v.strip().upper() for v in str(node.get(key, "")).split(",") if v.strip())


def _consent(node: dict[str, Any], store: Any) -> ConsentCheck:
    """`registry`: the store's own consent registry (docs/consent.md); `module:function`: the
    site's hook; none: nobody (consent is opt-in)."""
    hook = str(node.get("consent", ""))
    if not hook:
        return nobody_consents
    if hook != "registry":
        return resolve(hook)
    from incisive_node.consent.enforcement import permitting
    from incisive_node.consent.model import ANY_GRANTEE
    from incisive_node.consent.registry import ConsentRegistry

    registry = ConsentRegistry(store.index)
    # One snapshot per task: this process serves one message, so a withdrawal recorded
    # after it started is in force from the next message on.
    snapshots: dict[str, Callable[[str], bool]] = {}

    def consented(patient: str, purpose: str) -> bool:
        if purpose not in snapshots:
            snapshots[purpose] = permitting(registry, purpose, ANY_GRANTEE)
        return snapshots[purpose](patient)

    return consented


def _labels(node: dict[str, Any], store: Any, config: TrainingConfig) -> tuple[Any, Any]:
    """label_of and mask_of (None for classification) from the node config."""
    segmenting = config.task == "segmentation"
    if str(node["labels"]) == "annotation":
        from incisive_node.annotation.labels import ReviewedLabels

        reviewed = ReviewedLabels(store, config.task)
        return reviewed.label_of, reviewed.mask_of if segmenting else None
    masks = resolve(str(node["masks"])) if segmenting and "masks" in node else None
    if segmenting and masks is None:
        raise ValueError("segmentation on store data needs masks (or labels = \"annotation\")")
    return resolve(str(node["labels"])), masks


def resolve(reference: str) -> Any:
    """`package.module:attribute` -> the attribute (the site's own hooks)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
