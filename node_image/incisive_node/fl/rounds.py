"""The ServerApp's round loop: train, aggregate, report; drop silent sites; fail clearly.

Flower's `Strategy.start` waits forever for enough nodes and cannot tell a slow site from a
dead one, so the loop is ours and the strategy only configures and aggregates:

* A round goes to every live site. A site that sends no good reply within
  `round_timeout_s` (killed, partitioned, crashed) is dropped for the rest of the run.
* If fewer than `min_sites` sites replied, or fewer than `min_sites` are connected after
  `site_wait_s`, the run fails with `TooFewSites`, whose message says how many were left.
* Each train reply carries the site's evaluation of the global model it received, so one
  message per site per round both evaluates round r-1's model and trains round r; a last
  evaluate message scores the final model. That keeps traffic near 2x the model per round.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.metrics import MetricsSink

POLL_S = 0.2  # the quickest reply pull (Flower's own helper waits 3 s between pulls)
POLL_MAX_S = 1.0


class TooFewSites(RuntimeError):
    pass


@dataclass
class Sites:
    """The run's sites as the round loops see them: live ones, names, dropped ones."""

    grid: Grid
    names: dict[int, str] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)

    def live(self) -> list[int]:
        return sorted(n for n in self.grid.get_node_ids() if n not in self.dropped)

    def name(self, node_id: int) -> str:
        return self.names.get(node_id, f"node-{node_id}")

    def wait_for(self, count: int, timeout_s: float, round_: int) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while len(nodes := self.live()) < count:
            if time.monotonic() >= deadline:
                raise TooFewSites(
                    f"round {round_}: {len(nodes)} site(s) connected after {timeout_s:.0f}s,"
                    f" fewer than min_sites={count}"
                )
            time.sleep(POLL_S)
        return nodes


class _NodesView:
    """What a strategy's configure_* sees of the grid: the live sites only."""

    def __init__(self, nodes: list[int]) -> None:
        self._nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self._nodes)


def run_rounds(
    grid: Grid, strategy: Strategy, config: TrainingConfig, arrays: ArrayRecord, sink: MetricsSink
) -> ArrayRecord:
    """Train for config.rounds rounds; return the final global model's arrays."""
    sites = Sites(grid)
    sink.emit("started", strategy=config.strategy, rounds=config.rounds, min_sites=config.min_sites)
    pending_train: dict[str, float] | None = None  # train metrics of the previous round
    trained_by: list[str] = []
    for round_ in range(1, config.rounds + 1):
        started = time.monotonic()
        nodes = sites.wait_for(config.min_sites, config.site_wait_s, round_)
        messages = strategy.configure_train(round_, arrays, ConfigRecord(), _NodesView(nodes))
        good = _exchange(grid, sites, list(messages), config, round_, sink)
        new_arrays, _ = strategy.aggregate_train(round_, good)
        if new_arrays is None:
            raise TooFewSites(f"round {round_}: no usable model update to aggregate")
        rows, trained_by = _reports(good, sites)
        # The replies scored the model this round started from: round_ - 1's.
        emit_round(sink, round_ - 1, pending_train, rows, trained_by, "pre")
        pending_train = train_summary(rows, time.monotonic() - started)
        arrays = new_arrays
    return finish(grid, sites, arrays, config, sink, pending_train, trained_by)


def finish(
    grid: Grid,
    sites: Sites,
    arrays: ArrayRecord,
    config: TrainingConfig,
    sink: MetricsSink,
    pending_train: dict[str, float] | None,
    trained_by: list[str],
) -> ArrayRecord:
    """After the last round: one evaluate message per live site scores the final model and
    completes the last `round` event (or, with final_evaluation off, it carries training
    metrics only). Both round loops end here."""
    if not config.final_evaluation:
        sink.emit("round", round=config.rounds, sites=sorted(trained_by), **(pending_train or {}))
        return arrays
    nodes = sites.wait_for(config.min_sites, config.site_wait_s, config.rounds)
    messages = [_evaluate_message(arrays, n) for n in nodes]
    good = _exchange(grid, sites, messages, config, config.rounds, sink)
    emit_round(sink, config.rounds, pending_train, *_reports(good, sites), "")
    return arrays


def collect_replies(grid: Grid, messages: list[Message], timeout_s: float) -> list[Message]:
    """Send; pull until each message has a reply or timeout_s has passed."""
    waiting = set(grid.push_messages(messages))
    replies: list[Message] = []
    sent = time.monotonic()
    while waiting and time.monotonic() - sent < timeout_s:
        got = list(grid.pull_messages(waiting))
        replies.extend(got)
        waiting -= {m.metadata.reply_to_message_id for m in got}
        if waiting:
            time.sleep(pull_pause(time.monotonic() - sent))
    return replies


def pull_pause(waited_s: float) -> float:
    """The pause before the next pull: POLL_S at first, then a twentieth of the time waited
    so far, at most POLL_MAX_S. A reply is then noticed at most 5% (and 1 s) after it came,
    and a round that trains for minutes costs about one pull a second, not five: every pull
    is an HTTPS request the SuperLink answers with CPU the sites may be training on."""
    return min(max(POLL_S, waited_s / 20), POLL_MAX_S)


def failures(messages: list[Message], replies: list[Message]) -> dict[int, str]:
    """The sites that sent no good reply to their message, and why."""
    answered = {m.metadata.src_node_id for m in replies if not m.has_error()}
    why: dict[int, str] = {}
    for node in sorted({m.metadata.dst_node_id for m in messages} - answered):
        errors = [m for m in replies if m.metadata.src_node_id == node and m.has_error()]
        # Only the error code: a ClientApp's error text may quote what it choked on.
        why[node] = f"error code {errors[0].error.code}" if errors else "no reply in time"
    return why


def _exchange(
    grid: Grid,
    sites: Sites,
    messages: list[Message],
    config: TrainingConfig,
    round_: int,
    sink: MetricsSink,
) -> list[Message]:
    """Send, wait for replies until the round timeout, drop sites without a good reply."""
    replies = collect_replies(grid, messages, config.round_timeout_s)
    good = [m for m in replies if not m.has_error()]
    for message in good:
        site = message.content.config_records.get("site")
        if site is not None:
            sites.names[message.metadata.src_node_id] = str(site["name"])
    for node, reason in failures(messages, replies).items():
        sites.dropped.add(node)
        sink.emit("site-dropped", round=round_, site=sites.name(node), reason=reason)
    if len(good) < config.min_sites:
        raise TooFewSites(
            f"round {round_}: {len(good)} site(s) replied, fewer than"
            f" min_sites={config.min_sites}"
        )
    return good


def _evaluate_message(arrays: ArrayRecord, node_id: int) -> Message:
    content = RecordDict({"arrays": arrays, "config": ConfigRecord()})
    return Message(content=content, message_type=MessageType.EVALUATE, dst_node_id=node_id)


def _reports(replies: Iterable[Message], sites: Sites) -> tuple[list[dict[str, float]], list[str]]:
    """Each reply's metrics, and the names of the sites that sent them."""
    replies = list(replies)
    rows = [dict(next(iter(m.content.metric_records.values()))) for m in replies]
    return rows, [sites.name(m.metadata.src_node_id) for m in replies]


def train_summary(rows: list[dict[str, float]], seconds: float) -> dict[str, float]:
    examples = sum(r["num-examples"] for r in rows)
    loss = sum(r["train-loss"] * r["num-examples"] for r in rows) / max(examples, 1)
    return {
        "train_loss": loss,
        "train_examples": examples,
        "train_seconds_max": max(r["train-seconds"] for r in rows),
        "round_seconds": seconds,
    }


def emit_round(
    sink: MetricsSink,
    round_: int,
    train: dict[str, float] | None,
    rows: list[dict[str, float]],
    names: list[str],
    prefix: str,
) -> None:
    """One `round` event: the sites' scores (`rows`, keys `<prefix>-eval-*`), weighted by
    their examples, and the training metrics of that round."""
    key = f"{prefix}-eval" if prefix else "eval"
    examples = sum(r[f"{key}-examples"] for r in rows)
    loss = sum(r[f"{key}-loss"] * r[f"{key}-examples"] for r in rows) / max(examples, 1)
    accuracy = sum(r[f"{key}-accuracy"] * r[f"{key}-examples"] for r in rows) / max(examples, 1)
    scores: dict[str, float] = {}
    if rows and all(f"{key}-dice" in r for r in rows):  # the segmentation task's mean Dice
        scores["eval_dice"] = sum(
            r[f"{key}-dice"] * r[f"{key}-examples"] for r in rows
        ) / max(examples, 1)
    sink.emit(
        "round",
        round=round_,
        eval_loss=loss,
        eval_accuracy=accuracy,
        eval_examples=examples,
        sites=sorted(names),
        **scores,
        **(train or {}),
    )
