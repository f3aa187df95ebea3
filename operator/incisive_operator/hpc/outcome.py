"""A backend's state, and the conditions a workload shows for it.

Queued, Running, Succeeded and Failed are derived together from one state, so they never
contradict each other; `Succeeded` is the summary condition the printer columns read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..conditions import Conditions, get_condition, set_condition

Phase = Literal["queued", "pending", "starting", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class BackendState:
    phase: Phase
    reason: str
    message: str
    start_time: str | None = None
    end_time: str | None = None
    gpu_hours: float | None = None
    position: int | None = None  # place in the built-in queue, when queued by quota

    @property
    def finished(self) -> bool:
        return self.phase in ("succeeded", "failed")


def conditions_for(conditions: Conditions, state: BackendState,
                   generation: int | None) -> Conditions:
    queued = state.phase in ("queued", "pending")
    if queued:
        reason, message = state.reason, state.message
    elif state.phase != "failed":
        reason, message = "Admitted", "admitted to run"
    else:
        # A failure keeps an earlier admission on record; one that was never admitted says so.
        previous = get_condition(conditions, "Queued")
        if previous is not None and previous.get("reason") == "Admitted":
            reason, message = "Admitted", previous.get("message", "")
        else:
            reason, message = "NotAdmitted", state.message
    out = set_condition(conditions, "Queued", queued, reason, message, generation)
    running = state.phase == "running"
    out = set_condition(out, "Running", running,
                        state.reason if running or not state.finished else "Finished",
                        state.message if running or not state.finished else "no longer running",
                        generation)
    if state.phase == "succeeded":
        summary: bool | str = True
    elif state.phase == "failed":
        summary = False
    else:
        summary = "Unknown"
    out = set_condition(out, "Succeeded", summary, state.reason, state.message, generation)
    failed = state.phase == "failed"
    return set_condition(out, "Failed", failed, state.reason if failed else "NotFailed",
                         state.message if failed else "", generation)
