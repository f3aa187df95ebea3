"""The Kubernetes backend: an HPCWorkload becomes one batch/v1 Job, and the Job's state
becomes the workload's.

Jobs are created once and never re-applied: a Job's pod template is immutable, and in Kueue
mode Kueue owns `spec.suspend` and adds its flavour's node selectors, so re-applying our
manifest would fight it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from ..api import GROUP
from ..api.v1alpha1.hpcworkload import HPCWorkloadSpec
from ..naming import MANAGED_BY
from .outcome import BackendState
from .settings import HPCSettings

HPC_LABEL = f"{GROUP}/hpcworkload"
TENANT_LABEL = f"{GROUP}/tenant"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
CONTAINER = "workload"


def time_limit_seconds(text: str) -> int:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not match or not text:
        raise ValueError(f"not a time limit: {text!r} (use e.g. 90m or 2h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def cpu_count(quantity: str | int) -> int:
    return max(1, math.ceil(parse_quantity(quantity)))


def memory_mib(quantity: str | int) -> int:
    return max(1, math.ceil(parse_quantity(quantity) / (1024 * 1024)))


def job_name(workload: str) -> str:
    # A Job's name goes into its pods' `job-name` label: 63 characters at most.
    if len(workload) <= 63:
        return workload
    digest = hashlib.sha256(workload.encode()).hexdigest()[:8]
    return f"{workload[:54].rstrip('-')}-{digest}"


def manifest(body: dict[str, Any], spec: HPCWorkloadSpec, settings: HPCSettings,
             image: str, command: tuple[str, ...], owner: dict[str, Any]) -> dict[str, Any]:
    name = body["metadata"]["name"]
    labels = {**MANAGED_BY, HPC_LABEL: job_name(name), TENANT_LABEL: spec.tenant}
    if settings.kueue:
        labels[KUEUE_QUEUE_LABEL] = spec.queue
    resources: dict[str, Any] = {"cpu": str(spec.cpu), "memory": str(spec.memory)}
    if spec.gpus.count:
        resources[GPU_RESOURCE] = str(spec.gpus.count)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{
            "name": CONTAINER,
            "image": image,
            **({"command": list(command)} if command else {}),
            "env": [{"name": "INCISIVE_INPUTS",
                     "value": json.dumps([i.model_dump(exclude_none=True) for i in spec.inputs])}],
            # Extended resources must have requests equal to limits; do the same for all.
            "resources": {"requests": resources, "limits": resources},
            "terminationMessagePolicy": "File",
        }],
    }
    if spec.gpus.model:
        pod_spec["nodeSelector"] = {GPU_PRODUCT_LABEL: spec.gpus.model}
    priority_class = settings.priority_class_for(spec.priority)
    if priority_class:
        pod_spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": body["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": {
            # One attempt: a retry would run the analysis twice on the same donation and
            # be metered twice; a tenant resubmits on purpose instead.
            "backoffLimit": 0,
            "activeDeadlineSeconds": time_limit_seconds(spec.time_limit),
            # Kueue admits a Job by unsuspending it; without Kueue we create admitted Jobs.
            "suspend": settings.kueue,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def state(job: dict[str, Any], gpu_hours: float) -> BackendState:
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []
                  if c.get("status") == "True"}
    start, end = status.get("startTime"), status.get("completionTime")
    if "Complete" in conditions:
        return BackendState("succeeded", "Completed", "the Job completed", start,
                            end or conditions["Complete"].get("lastTransitionTime"), gpu_hours)
    if "Failed" in conditions:
        failed = conditions["Failed"]
        return BackendState("failed", failed.get("reason") or "JobFailed",
                            failed.get("message") or "the Job failed", start,
                            failed.get("lastTransitionTime"), gpu_hours)
    if (job.get("spec") or {}).get("suspend"):
        return BackendState("pending", "Suspended", "the Job is suspended", None, None, gpu_hours)
    if (status.get("ready") or 0) > 0:
        return BackendState("running", "PodsRunning", "the workload's pod is running", start,
                            None, gpu_hours)
    workload = (job["metadata"].get("labels") or {}).get(HPC_LABEL, "")
    return BackendState("starting", "PodsPending",
                        "admitted; the pod waits to be scheduled or to start "
                        f"(`kubectl describe pods -l {HPC_LABEL}={workload}` shows why)",
                        start, None, gpu_hours)
