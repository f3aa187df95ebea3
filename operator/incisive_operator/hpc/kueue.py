"""Kueue mode: Kueue admits our Jobs; we read its Workload and show its verdict.

Kueue (kueue.x-k8s.io/v1beta1) creates one Workload per Job it manages, labelled
`kueue.x-k8s.io/job-uid=<the Job's uid>`, and reports admission in the Workload's
conditions: `QuotaReserved` (quota held in a ClusterQueue; when False its message says what
is missing), `Admitted` (the Job may start; Kueue then unsuspends it), `Evicted` and
`Preempted` (admission withdrawn; the Job is suspended again and requeued), `Finished`.
Running, success and failure still come from the Job itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta1"
WORKLOADS = "workloads"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"


@dataclass(frozen=True)
class Admission:
    admitted: bool
    reason: str
    message: str


def find_workload(api: Any, namespace: str, job_uid: str) -> dict[str, Any] | None:
    """Kueue's Workload for a Job; None while there is none (or Kueue is not installed)."""
    from kubernetes import client

    try:
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, namespace, WORKLOADS,
            label_selector=f"{JOB_UID_LABEL}={job_uid}",
        )
    except client.ApiException as exc:
        if exc.status == 404:  # the Workload kind is not served: Kueue is not installed
            return None
        raise
    items = found.get("items") or []
    return items[0] if items else None


def admission(workload: dict[str, Any] | None, queue: str) -> Admission:
    if workload is None:
        return Admission(False, "WaitingForKueue",
                         f"the Job is suspended until Kueue admits it; Kueue has not created a "
                         f"Workload for it yet (is Kueue running, and is LocalQueue {queue!r} "
                         "defined in this namespace?)")
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions")
                  or []}
    name = workload["metadata"]["name"]

    def true(kind: str) -> bool:
        return (conditions.get(kind) or {}).get("status") == "True"

    for withdrawn in ("Evicted", "Preempted"):
        if true(withdrawn) and not true("Admitted"):
            return Admission(False, f"Kueue{withdrawn}",
                             f"Kueue Workload {name}: {conditions[withdrawn].get('message', '')}")
    if true("Admitted"):
        cluster_queue = ((workload.get("status") or {}).get("admission") or {}).get(
            "clusterQueue", "")
        return Admission(True, "KueueAdmitted",
                         f"Kueue admitted Workload {name} in ClusterQueue {cluster_queue}")
    if true("QuotaReserved"):
        return Admission(False, "KueueQuotaReserved",
                         f"Kueue Workload {name} holds quota and waits for its admission checks")
    pending = conditions.get("QuotaReserved") or {}
    return Admission(False, "KueuePending",
                     f"Kueue Workload {name}: {pending.get('message') or 'waiting for quota'}")
