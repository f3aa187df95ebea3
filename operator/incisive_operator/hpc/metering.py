"""Metering: GPU-hours a workload held and what they are estimated to cost.

GPU time is counted while a pod holds its GPUs on a node: from the pod's start (the kubelet
accepted it) to its containers' end, or to now while it runs. A pod that never left Pending
held no GPU and costs nothing, which is what a tenant expects from a queue. Per-tenant sums
go to Prometheus as gauges recomputed from every workload's status (level-based: a restart
does not double count). The tenant label is bounded by the consortium's membership.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from prometheus_client import Gauge

TENANT_GPU_HOURS = Gauge("incisive_hpc_tenant_gpu_hours",
                         "GPU-hours used by the tenant's workloads the operator knows", ["tenant"])
TENANT_COST = Gauge("incisive_hpc_tenant_estimated_cost",
                    "Estimated cost of the tenant's GPU-hours", ["tenant", "currency"])
TENANT_GPUS_IN_USE = Gauge("incisive_hpc_tenant_gpus_admitted",
                           "GPUs held by the tenant's admitted, unfinished workloads", ["tenant"])
TENANT_QUEUED = Gauge("incisive_hpc_tenant_queued_workloads",
                      "The tenant's workloads waiting for admission", ["tenant"])


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def pod_gpus(pod: dict[str, Any]) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        total += int(limits.get("nvidia.com/gpu", 0) or 0)
    return total


def pod_gpu_seconds(pod: dict[str, Any], now: dt.datetime) -> float:
    status = pod.get("status") or {}
    started = parse_time(status.get("startTime"))
    if started is None or not (pod.get("spec") or {}).get("nodeName"):
        return 0.0
    ended: dt.datetime | None = None
    if status.get("phase") in ("Succeeded", "Failed"):
        finishes = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                    for c in status.get("containerStatuses") or []]
        ended = max((f for f in finishes if f), default=None)
    elif (pod.get("metadata") or {}).get("deletionTimestamp"):
        ended = parse_time(pod["metadata"]["deletionTimestamp"])
    end = ended or now
    return max(0.0, (end - started).total_seconds()) * pod_gpus(pod)


def gpu_hours(pods: Iterable[dict[str, Any]], now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    return round(sum(pod_gpu_seconds(p, now) for p in pods) / 3600, 6)


def gpu_hours_between(gpus: int, start: dt.datetime | None, end: dt.datetime | None) -> float:
    """For backends that report only a job's start and end (Slurm)."""
    if start is None or gpus == 0:
        return 0.0
    end = end or dt.datetime.now(dt.UTC)
    return round(max(0.0, (end - start).total_seconds()) * gpus / 3600, 6)


def cost(hours: float, price_per_gpu_hour: float) -> float:
    return round(hours * price_per_gpu_hour, 4)


def publish(tenant: str, hours: float, estimated_cost: float, currency: str,
            gpus_admitted: int, queued: int) -> None:
    TENANT_GPU_HOURS.labels(tenant).set(hours)
    TENANT_COST.labels(tenant, currency).set(estimated_cost)
    TENANT_GPUS_IN_USE.labels(tenant).set(gpus_admitted)
    TENANT_QUEUED.labels(tenant).set(queued)
