"""Site mode: a DataNode becomes the appliance and its fences, and reports their state.

Level-based: every trigger (create, spec change, resume after a restart, a periodic timer,
a change in the appliance's StatefulSet) runs the same convergence: compute the desired
children, server-side apply them, and derive the status from what the cluster reports.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.datanode import DataNodeSpec
from ..conditions import get_condition, set_condition
from ..kube import apply, owner_reference, swap_status
from ..metrics import measured
from ..naming import DATANODE_LABEL
from ..site import appliance

KIND = "DataNode"
PLURAL = "datanodes"


def register(registry: kopf.OperatorRegistry, memo_key: str = "site_api") -> None:
    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    # The timer only repairs drift (a deleted or hand-edited child): the create/update/resume
    # handlers and appliance_changed carry the changes. Each pass is seven API calls per
    # DataNode, so at 60 s it was most of the operator's load while 1000 DataNodes came up
    # (nine passes during one start-up, 9x the work of the start-up itself); and a first pass
    # right after the creation handler had converged found nothing to do.
    @kopf.timer(GROUP, VERSION, PLURAL, interval=300, initial_delay=300, idle=30, backoff=10,
                registry=registry)
    def reconcile_datanode(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
    ) -> None:
        with measured(KIND):
            converge(body, patch, memo[memo_key], logger)

    # StatefulSet uid -> the readyReplicas its DataNode's status was last refreshed from.
    # Most StatefulSet events (revisions, observedGeneration, pod counts) leave readiness as
    # it was; each used to cost a GET of the DataNode. Per process: a restarted operator
    # refreshes once per StatefulSet, and the timer corrects anything in between.
    refreshed: dict[str, int] = {}

    @kopf.on.event("apps", "v1", "statefulsets", registry=registry,
                   labels={DATANODE_LABEL: kopf.PRESENT})
    def appliance_changed(
        event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, logger: logging.Logger,
        **_: Any
    ) -> None:
        # The StatefulSet moved (a pod became ready or died): refresh its DataNode's status
        # right away instead of waiting for the timer.
        uid = body["metadata"]["uid"]
        owner = body["metadata"].get("labels", {}).get(DATANODE_LABEL)
        if event.get("type") == "DELETED" or body["metadata"].get("deletionTimestamp"):
            refreshed.pop(uid, None)
            return
        ready_replicas = (body.get("status") or {}).get("readyReplicas") or 0
        if not owner or refreshed.get(uid) == ready_replicas:
            return
        refresh_status(memo[memo_key], body["metadata"]["namespace"], owner, body, logger)
        refreshed[uid] = ready_replicas


def converge(body: kopf.Body, patch: kopf.Patch, api: Any, logger: logging.Logger) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    if body["metadata"].get("deletionTimestamp"):
        return  # going away: recreating children would only race the garbage collector
    generation = body["metadata"].get("generation")
    conditions = list(body.get("status", {}).get("conditions", []))
    try:
        spec = DataNodeSpec.model_validate(dict(body.get("spec", {})))
    except ValidationError as exc:
        # The schema admitted it, the model did not: say which field, and do not retry blindly.
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        patch.status["conditions"] = set_condition(
            conditions, "Ready", False, "InvalidSpec", message[:1000], generation
        )
        kopf.warn(body, reason="InvalidSpec", message=message[:1000])
        raise kopf.PermanentError(message) from exc
    owner = owner_reference(dict(body))
    statefulset: dict[str, Any] = {}
    try:
        for manifest in appliance.desired(name, namespace, spec):
            manifest["metadata"]["ownerReferences"] = [owner]
            applied = apply(api, manifest)
            if manifest["kind"] == "StatefulSet":
                statefulset = applied
    except Exception as exc:
        if _namespace_terminating(exc):
            logger.info("namespace %s is being deleted; nothing to converge", namespace)
            return
        raise
    conditions = set_condition(
        conditions, "ChildrenApplied", True, "Applied",
        "StatefulSet, Service, PVC, ConfigMap, ServiceAccount and NetworkPolicy are applied",
        generation,
    )
    patch.status["conditions"] = _with_readiness(body, conditions, statefulset, generation)
    patch.status["observedGeneration"] = generation
    patch.status["readyReplicas"] = (statefulset.get("status") or {}).get("readyReplicas", 0)
    if spec.hub is None:
        patch.status["enrolment"] = "Disabled"
    logger.debug("converged %s/%s", namespace, name)


def _namespace_terminating(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 403 and "being terminated" in str(
        getattr(exc, "body", "") or exc)


def _with_readiness(
    body: kopf.Body | dict[str, Any],
    conditions: list[dict[str, Any]],
    statefulset: dict[str, Any],
    generation: int | None,
) -> list[dict[str, Any]]:
    status = statefulset.get("status") or {}
    ready = (status.get("readyReplicas") or 0) >= 1
    has_keys = bool(((body.get("spec") or {}).get("deidentification") or {}).get("vault"))
    if not has_keys:
        ready, reason, message = False, "NoPseudonymisationKeys", (
            "spec.deidentification.vault is not set: the appliance cannot pseudonymise, so "
            "it accepts no data; point it at the site's OpenBao/Vault")
    elif ready:
        reason, message = "ApplianceReady", "the appliance is running and ready"
    elif not get_condition(conditions, "ChildrenApplied"):
        reason, message = "Pending", "the appliance has not been created yet"
    else:
        reason, message = (
            "ApplianceStarting",
            "waiting for the appliance pod to become ready; `kubectl describe statefulset "
            f"{statefulset.get('metadata', {}).get('name', '')}` shows why if this persists",
        )
    previous = get_condition(conditions, "Ready")
    updated = set_condition(conditions, "Ready", ready, reason, message, generation)
    deleting = bool(body.get("metadata", {}).get("deletionTimestamp"))
    if not deleting and (previous is None or (previous.get("status") == "True") != ready):
        event = kopf.info if ready else kopf.warn
        if previous is not None or ready:
            event(dict(body), reason=reason, message=message)
    return updated


def refresh_status(
    api: Any, namespace: str, datanode: str, statefulset: dict[str, Any], logger: logging.Logger
) -> None:
    # The status is rewritten whole (conditions is a list): without the compare-and-swap, a
    # read taken before the creation handler's status landed would drop ChildrenApplied (or
    # the daemon's Enrolled).
    def patch_for(current: dict[str, Any]) -> dict[str, Any] | None:
        status = current.get("status") or {}
        conditions = status.get("conditions", [])
        generation = status.get("observedGeneration")
        ready_replicas = (statefulset.get("status") or {}).get("readyReplicas") or 0
        updated = _with_readiness(current, conditions, dict(statefulset), generation)
        if updated == conditions and status.get("readyReplicas") == ready_replicas:
            return None
        return {"status": {"conditions": updated, "readyReplicas": ready_replicas}}

    if not swap_status(api, GROUP, VERSION, namespace, PLURAL, datanode, patch_for):
        return
    logger.debug("status of %s/%s refreshed from its StatefulSet", namespace, datanode)
