"""Secure aggregation (SecAgg+): the hub learns the weighted mean of the sites' updates only.

Two tiers. In process: the ServerApp's secure rounds (secure_rounds.py) and the real
ClientApp (secure_train.py's adapter around the same train handler, Flower's secaggplus_mod)
exchange messages through `_LocalGrid`, which hands each message, serialized and back like
the wire would, to the ClientApp of the site it names. That checks the arithmetic (the
unmasked sum equals plain weighted averaging within quantization error), that no reply to
the hub carries weights, and a site lost at setup. End to end: real `flower-superlink` and
`flower-supernode` processes on 127.0.47.* (hub .100, sites .1-.3), as in test_federation,
training with secure aggregation; then a site killed mid-run. A SecAgg+ round is four
messages per site, so rounds cost more here than plain ones.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.app.error import Error
from flwr.supercore.task_identity import TaskIdentity

from incisive_node.fl import client_app
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.loopback import LoopbackFederation
from incisive_node.fl.metrics import MetricsSink, read_events
from incisive_node.fl.model import build_model
from incisive_node.fl.rounds import TooFewSites
from incisive_node.fl.secure_rounds import run_secure_rounds

SAMPLES = 60  # per synthetic site: enough to train on, quick to train


@pytest.fixture(autouse=True)
def _as_the_serverapp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower stamps new messages with the running task's identity, which the ServerApp
    runner sets; in process, this test is that task."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


class _LocalGrid:
    """A Grid whose sites are ClientApps in this process. Messages are deep-copied both
    ways (the wire would serialize them; the SecAgg+ mod edits what it receives). Sites in
    `lost` never answer. `replies` keeps every reply the hub received."""

    def __init__(self, contexts: dict[int, Context], lost: Iterable[int] = ()) -> None:
        self.contexts = contexts
        self.lost = set(lost)
        self.run = SimpleNamespace(run_id=1)
        self.replies: list[Message] = []
        self._ready: dict[str, Message] = {}
        self._count = 0

    def get_node_ids(self) -> list[int]:
        return sorted(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for message in messages:
            self._count += 1
            message_id = f"m{self._count}"
            message.metadata.__dict__["_message_id"] = message_id  # as the SuperLink would
            ids.append(message_id)
            node = message.metadata.dst_node_id
            if node in self.lost:
                continue
            received = copy.deepcopy(message)
            try:
                reply = client_app.app(received, self.contexts[node])
            except Exception as error:  # what the ClientApp runner turns into an error reply
                reply = Message(Error(code=1, reason=type(error).__name__), reply_to=received)
            self._ready[message_id] = copy.deepcopy(reply)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        got = [self._ready.pop(i) for i in list(message_ids) if i in self._ready]
        self.replies.extend(got)
        return got


def _sites(count: int, config: TrainingConfig) -> dict[int, Context]:
    return {
        100 + i: Context(
            run_id=1,
            node_id=100 + i,
            node_config={"data": "synthetic", "site-index": i, "site-count": count,
                         "samples": SAMPLES, "torch-threads": 1, "site": f"site-{i + 1}"},
            state=RecordDict(),
            run_config=config.to_run_config(),
        )
        for i in range(count)
    }


def _run(config: TrainingConfig, grid: _LocalGrid, folder: Path) -> ArrayRecord:
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=config.to_run_config())
    initial = ArrayRecord(torch_state_dict=build_model(config).state_dict())
    return run_secure_rounds(grid, context, config, initial, MetricsSink(folder))  # type: ignore[arg-type]


def _config(**overrides: Any) -> TrainingConfig:
    values: dict[str, Any] = {"secure_aggregation": True, "rounds": 1,
                              "final_evaluation": False, "round_timeout_s": 5.0,
                              "site_wait_s": 5.0}
    return TrainingConfig(**{**values, **overrides})


def test_the_unmasked_sum_is_the_weighted_mean_and_no_reply_carries_weights(
    tmp_path: Path,
) -> None:
    config = _config()
    grid = _LocalGrid(_sites(3, config))
    secure = _run(config, grid, tmp_path).to_numpy_ndarrays()

    # The same round without secure aggregation: each site's plain train reply, averaged
    # by its examples (the handler is deterministic for a given round's seed).
    initial = ArrayRecord(torch_state_dict=build_model(config).state_dict())
    plain_config = config.to_run_config() | {"secure-aggregation": False}
    updates, weights = [], []
    for node, site in _sites(3, config).items():
        site.run_config = plain_config
        content = RecordDict({"arrays": initial, "config": ConfigRecord({"server-round": 1})})
        message = Message(content, dst_node_id=node, message_type=MessageType.TRAIN)
        message.metadata.__dict__["_message_id"] = f"plain-{node}"
        reply = client_app.app(message, site)
        updates.append(reply.content["arrays"].to_numpy_ndarrays())
        weights.append(reply.content["metrics"]["num-examples"])
    mean = [sum(w * u[i] for w, u in zip(weights, updates, strict=True)) / sum(weights)
            for i in range(len(updates[0]))]
    error = max(float(np.abs(s - m).max()) for s, m in zip(secure, mean, strict=True))
    # 2**22 levels over [-8, 8], applied to weights scaled by examples / 1000: about 1e-4.
    assert error < 1e-3, error
    assert max(float(np.abs(m - i).max()) for m, i in
               zip(mean, initial.to_numpy_ndarrays(), strict=True)) > 10 * error  # it trained

    # What the hub received: keys, encrypted shares, masked vectors, and metrics; the
    # train replies' weight records are empty.
    train_replies = [r for r in grid.replies if r.metadata.message_type == MessageType.TRAIN]
    assert len(train_replies) == 4 * 3  # four stages, three sites
    records = [rec for r in train_replies for rec in r.content.array_records.values()]
    assert records and not any(len(record) for record in records)
    events = read_events(tmp_path / "metrics.jsonl")
    assert [e["event"] for e in events] == ["started", "round", "round"]
    assert events[1]["sites"] == ["site-1", "site-2", "site-3"]
    assert events[1]["eval_examples"] > 0 and events[2]["train_examples"] > 0


def test_a_site_lost_at_setup_is_left_out(tmp_path: Path) -> None:
    """Flower's own workflow would ask the others for shares the lost site never sent."""
    config = _config(min_sites=2)
    grid = _LocalGrid(_sites(3, config), lost={102})
    _run(config, grid, tmp_path)
    events = read_events(tmp_path / "metrics.jsonl")
    dropped = [e for e in events if e["event"] == "site-dropped"]
    assert [(e["round"], e["site"], e["reason"]) for e in dropped] == [
        (1, "node-102", "no reply in time")]
    assert next(e["sites"] for e in events if e["event"] == "round") == ["site-1", "site-2"]


def test_too_few_sites_left_fails_clearly(tmp_path: Path) -> None:
    config = _config(min_sites=2)
    grid = _LocalGrid(_sites(2, config), lost={101})
    with pytest.raises(TooFewSites, match=r"round 1: 1 site\(s\) replied, fewer than min_sites=2"):
        _run(config, grid, tmp_path)


def test_fedprox_with_local_dp_under_secure_aggregation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Local DP is a mod inside the adapter: each site noises its update before masking."""
    config = _config(strategy="fedprox", dp="local", min_sites=3)
    _run(config, _LocalGrid(_sites(3, config)), tmp_path)
    rounds = [e for e in read_events(tmp_path / "metrics.jsonl") if e["event"] == "round"]
    assert rounds[-1]["sites"] == ["site-1", "site-2", "site-3"]
    assert caplog.text.count("LocalDpMod: parameters are clipped") == 3


def test_a_site_refuses_plain_training_in_a_secure_run() -> None:
    config = _config()
    site = _sites(1, config)[100]
    initial = ArrayRecord(torch_state_dict=build_model(config).state_dict())
    message = Message(RecordDict({"arrays": initial, "config": ConfigRecord()}),
                      dst_node_id=100, message_type=MessageType.TRAIN)
    message.metadata.__dict__["_message_id"] = "plain"
    with pytest.raises(RuntimeError, match="secure aggregation"):
        client_app.app(message, site)


# ---- end to end, real processes --------------------------------------------------------

E2E = {"secure_aggregation": True, "local_epochs": 6, "site_wait_s": 60.0,
       "round_timeout_s": 30.0}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterable[LoopbackFederation]:
    with LoopbackFederation(tmp_path_factory.mktemp("secagg"), site_count=3,
                            block="127.0.47", samples=200) as fed:
        yield fed


def test_secure_fedavg_learns_across_three_sites(federation: LoopbackFederation) -> None:
    result = federation.run(TrainingConfig(rounds=2, min_sites=2, **E2E), "secure-fedavg")
    assert result.succeeded, result.reason
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    assert all(r["sites"] == ["site-1", "site-2", "site-3"] for r in result.rounds)
    accuracy = [r["eval_accuracy"] for r in result.rounds]
    assert accuracy[-1] > 0.8, accuracy  # two classes: chance is 0.5
    assert accuracy[-1] > accuracy[0] + 0.2, accuracy
    assert all("train_loss" in r for r in result.rounds[1:])
    for site in federation.sites.values():  # Flower's mod ran every stage at each site
        log = (site.state_dir / "supernode.log").read_text()
        assert log.count("Received successfully") >= 4 * 2


def test_secure_run_survives_a_site_killed_mid_run(federation: LoopbackFederation) -> None:
    """Three sites, min_sites=2: site-3 is killed once round 1 is in; SecAgg+ leaves it
    out (threshold 2 of 3) and the run completes on the other two. Runs last: it kills."""
    control, bundle = federation.control, federation.bundle
    assert control is not None and bundle is not None
    config = TrainingConfig(rounds=3, min_sites=2, final_evaluation=False,
                            **{**E2E, "round_timeout_s": 20.0})
    handle = control.start_run(bundle.app_dir, config, federation.root / "runs" / "killed")
    killer = threading.Thread(target=_kill_after_round, args=(federation, handle.metrics_path))
    killer.start()
    result = control.wait(handle, timeout_s=400)
    killer.join()
    assert result.succeeded, result.reason
    dropped = [e for e in result.events if e["event"] == "site-dropped"]
    assert [e["site"] for e in dropped] == ["site-3"]
    after = [r for r in result.rounds if r["round"] >= dropped[0]["round"]]
    assert after and all(r["sites"] == ["site-1", "site-2"] for r in after)


def _kill_after_round(fed: LoopbackFederation, metrics: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(e["event"] == "round" for e in read_events(metrics)):  # round 1 aggregated
            break
        time.sleep(0.2)
    fed.sites["site-3"].kill()
