"""Built-in per-tenant GPU admission, for clusters without Kueue.

Level-based: every decision is recomputed from the whole set of the tenant's unfinished
workloads, so any reconcile of any workload reaches the same answer. Workloads already
admitted keep their GPUs (no preemption); the rest wait in one strict order (higher
priority first, then older, then by uid as a tie-break) and none jumps the head of the queue,
so a large workload is never starved by a stream of small ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One unfinished workload as the queue sees it."""

    key: str  # namespace/name
    uid: str
    gpus: int
    priority: int
    created: str  # RFC 3339 from metadata.creationTimestamp: sorts as time
    admitted: bool


@dataclass(frozen=True)
class Decision:
    admitted: bool
    position: int | None = None  # 1 = next in line; None when admitted or never admissible
    exceeds_quota: bool = False  # asks for more GPUs than the tenant may ever hold


def queue_order(claim: Claim) -> tuple[int, str, str]:
    return (-claim.priority, claim.created, claim.uid)


def decide(claims: Iterable[Claim], quota: int) -> dict[str, Decision]:
    claims = list(claims)
    decisions: dict[str, Decision] = {}
    used = sum(c.gpus for c in claims if c.admitted)
    for claim in claims:
        if claim.admitted:
            decisions[claim.key] = Decision(admitted=True)
    position = 0
    for claim in sorted((c for c in claims if not c.admitted), key=queue_order):
        if claim.gpus > quota:
            decisions[claim.key] = Decision(admitted=False, exceeds_quota=True)
        elif position == 0 and used + claim.gpus <= quota:
            used += claim.gpus
            decisions[claim.key] = Decision(admitted=True)
        else:
            position += 1
            decisions[claim.key] = Decision(admitted=False, position=position)
    return decisions


def in_use(claims: Iterable[Claim]) -> int:
    return sum(c.gpus for c in claims if c.admitted)
