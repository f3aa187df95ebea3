"""The site's side of secure aggregation (SecAgg+): the train handler behind Flower's mod.

Under secure aggregation the hub runs Flower's SecAgg+ workflow (secure_rounds.py), and a
round is four train messages to each site. Flower's `secaggplus_mod` answers three of them
itself (its public keys; its secrets, Shamir-shared and encrypted for the other sites; the
shares that unmask the sum). For the third stage it calls the handler, quantizes and masks
the weights it returns, and empties the reply's arrays: in the clear the hub gets only the
handler's metrics (numbers and the site's name), never the weights.

That workflow speaks Flower's legacy shapes (FitIns in, FitRes out), and our train handler
the message API. `_legacy_fit` translates both ways around the same handler, so training,
consent filtering at the moment of use and local DP (a mod inside it) stay one code path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.model import build_model

Handler = Callable[[Message, Context], Message]


def secure_aggregation(message: Message, context: Context, call_next: Handler) -> Message:
    """SecAgg+ for the messages that carry its stages; plain train messages pass through."""
    if RECORD_KEY_CONFIGS in message.content.config_records:
        return secaggplus_mod(message, context, lambda m, c: _legacy_fit(m, c, call_next))
    if TrainingConfig.from_run_config(context.run_config).secure_aggregation:
        # The run promised the sites that only the sum leaves them: a plain train message
        # (whose reply would carry this site's weights) does not get an answer.
        raise RuntimeError("this run uses secure aggregation; plain train messages are refused")
    return call_next(message, context)


def _legacy_fit(message: Message, context: Context, call_next: Handler) -> Message:
    """FitIns -> the app's train message -> its reply -> FitRes, for secaggplus_mod."""
    config = TrainingConfig.from_run_config(context.run_config)
    fitins = compat.recorddict_to_fitins(message.content, keep_input=True)
    template = build_model(config).state_dict()
    arrays = named_arrays(template, parameters_to_ndarrays(fitins.parameters))
    # The mod reads only the reply's content; this message is ours to rewrite.
    message.content = RecordDict({"arrays": arrays, "config": ConfigRecord(dict(fitins.config))})
    reply = call_next(message, context)
    if reply.has_error():  # e.g. local DP refusing the update: nothing to mask
        raise RuntimeError(f"the train handler failed (error code {reply.error.code})")
    metrics = dict(reply.content["metrics"])
    metrics["site"] = str(reply.content["site"]["name"])
    # SecAgg+ multiplies the weights by examples / max_weight and clips them to the
    # clipping range: a ratio above 1 would clip the model itself, so a bigger site counts
    # as max_weight examples in the average. Its true count still goes out in `metrics`.
    weight = min(int(metrics["num-examples"]), int(config.secagg_max_weight))
    update = ndarrays_to_parameters(reply.content["arrays"].to_numpy_ndarrays())
    fitres = FitRes(Status(Code.OK, ""), update, weight, metrics)
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=message)


def named_arrays(template: Mapping[str, torch.Tensor], arrays: Sequence[np.ndarray]) -> ArrayRecord:
    """Legacy parameters are a bare list in the model's order (and the hub's sum comes back
    as float64): give them the names and dtypes of the model's state dict."""
    return ArrayRecord(
        torch_state_dict={
            name: torch.from_numpy(np.asarray(array)).to(like.dtype).reshape(like.shape)
            for (name, like), array in zip(template.items(), arrays, strict=True)
        }
    )
