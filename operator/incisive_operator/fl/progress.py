"""A run's metrics events (metrics.jsonl, written by the ServerApp) folded into what a
TrainingJob's status shows. Pure: the same file always gives the same status, so an
operator that restarts simply reads the file again.

A `round` event for round r carries the sites' scores of the model after round r (round 0:
the initial model) and the training loss of round r; the ServerApp emits it when the next
round's replies (or the final evaluation) arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True)
class Progress:
    started: bool = False
    rounds: list[dict[str, Any]] = field(default_factory=list)
    participating: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # site -> why
    completed: Event | None = None
    failed: Event | None = None

    @property
    def current_round(self) -> int | None:
        return self.rounds[-1]["round"] if self.rounds else None

    @property
    def finished(self) -> bool:
        return self.completed is not None or self.failed is not None


def fold(events: list[Event], node_names: dict[int, str] | None = None) -> Progress:
    """`node_names`: site names by SuperNode id. The ServerApp learns a site's name from its
    first reply, so a site that never replied is reported as `node-<id>`."""
    names = {f"node-{node}": site for node, site in (node_names or {}).items()}
    rounds: dict[int, dict[str, Any]] = {}
    participating: set[str] = set()
    dropped: dict[str, str] = {}
    started = False
    completed = failed = None
    for event in events:
        kind = event.get("event")
        if kind == "started":
            started = True
        elif kind == "round":
            entry = _round(event, names)
            rounds[entry["round"]] = entry
            participating.update(entry["sites"])
        elif kind == "site-dropped":
            site = str(event.get("site", "unknown"))
            site = names.get(site, site)
            dropped.setdefault(site, f"dropped in round {event.get('round')}: "
                                     f"{event.get('reason', 'no reason given')}")
        elif kind == "completed":
            completed = event
        elif kind == "failed":
            failed = event
    return Progress(started, [rounds[r] for r in sorted(rounds)], sorted(participating),
                    dropped, completed, failed)


def _round(event: Event, names: dict[str, str]) -> dict[str, Any]:
    sites = sorted(names.get(str(s), str(s)) for s in event.get("sites") or [])
    entry: dict[str, Any] = {"round": int(event["round"]), "sites": sites}
    for key, name, kind in (("eval_loss", "loss", float), ("eval_accuracy", "accuracy", float),
                            ("eval_examples", "examples", int),
                            ("train_loss", "trainLoss", float)):
        if event.get(key) is not None:
            value = kind(event[key])
            entry[name] = round(value, 6) if kind is float else value
    return entry


def summary(progress: Progress) -> str:
    """One line for the Succeeded condition of a completed run."""
    last = progress.rounds[-1] if progress.rounds else {}
    parts = [f"{last.get('round', 0)} rounds"]
    if "accuracy" in last:
        parts.append(f"final accuracy {last['accuracy']:.3f} on {last.get('examples', 0)} "
                     "validation examples")
    parts.append(f"sites: {', '.join(last.get('sites') or progress.participating) or 'none'}")
    if progress.dropped:
        parts.append(f"dropped: {', '.join(sorted(progress.dropped))}")
    return "; ".join(parts)
