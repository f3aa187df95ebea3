"""The ServerApp: runs at the hub, in a process the SuperLink starts for each run.

It builds the initial model, runs the rounds (rounds.py, or secure_rounds.py under secure
aggregation), and saves the final model with its SHA-256 into the run's output folder, next
to metrics.jsonl, with model.json: the run config that rebuilds the model's architecture
(task, image_size, width, ...), which the annotation service reads when it loads the model
(annotation/model_ref.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.metrics import MetricsSink
from incisive_node.fl.model import build_model, model_bytes
from incisive_node.fl.rounds import TooFewSites, run_rounds
from incisive_node.fl.secure_rounds import run_secure_rounds
from incisive_node.fl.strategies import make_strategy

MODEL_FILE = "model.pt"
MODEL_CONFIG_FILE = "model.json"

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = TrainingConfig.from_run_config(context.run_config)
    if not config.output_dir:
        raise ValueError("the run config must name an output-dir at the hub")
    folder = Path(config.output_dir)
    sink = MetricsSink(folder)
    model = build_model(config)
    initial = ArrayRecord(torch_state_dict=model.state_dict())
    try:
        if config.secure_aggregation:  # SecAgg+: the hub only ever sees the sum
            final = run_secure_rounds(grid, context, config, initial, sink)
        else:
            final = run_rounds(grid, make_strategy(config), config, initial, sink)
    except TooFewSites as error:
        sink.emit("failed", reason=str(error))
        raise
    except Exception as error:
        # The type only: an exception's text could quote the data it choked on.
        sink.emit("failed", reason=f"server error: {type(error).__name__}")
        raise
    model.load_state_dict(final.to_torch_state_dict())
    digest, size = save_model(model.state_dict(), folder / MODEL_FILE)
    save_model_config(config, digest, folder / MODEL_CONFIG_FILE)
    sink.emit(
        "completed",
        task=config.task,
        model_path=str(folder / MODEL_FILE),
        model_sha256=digest,
        model_file_bytes=size,
        model_bytes=model_bytes(model),
    )


def save_model(state_dict: dict[str, torch.Tensor], path: Path) -> tuple[str, int]:
    """Write the weights (torch.save format); return the file's SHA-256 and size."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    digest = hashlib.sha256(data).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest, len(data)


def save_model_config(config: TrainingConfig, digest: str, path: Path) -> None:
    """What rebuilds the model: its run config (less the hub's output folder) and the hash
    of the weights it belongs with."""
    values = {k: v for k, v in config.to_run_config().items() if k != "output-dir"}
    text = json.dumps({"model_sha256": digest, "config": values}, indent=2, sort_keys=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
