"""Site mode: for each DataNode with a hub, enrol (pull-only) and then keep a heartbeat.

One daemon per such DataNode. It never blocks local work: the appliance is reconciled by
other handlers whether or not the hub answers. Status changes are written only when the
enrolment phase or the hub's reachability changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf
from kubernetes import client

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.datanode import DataNodeSpec
from ..conditions import get_condition, set_condition
from ..fl.local import LocalRuntime
from ..hub.sites import HEARTBEAT_SECONDS, namespace_of
from ..kube import owner_reference
from ..site import access, enrolment, training, work

PLURAL = "datanodes"
RETRY_SECONDS = 3


def _has_hub(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("hub"))


def register(registry: kopf.OperatorRegistry, memo_key: str = "site_api") -> None:
    @kopf.daemon(GROUP, VERSION, PLURAL, when=_has_hub, registry=registry, id="enrolment",
                 cancellation_timeout=5)
    def enrol_and_beat(
        body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
        logger: logging.Logger, **_: Any
    ) -> None:
        run(dict(body), stopped, memo[memo_key], logger, memo.get("fl_runtime"))


def run(body: dict[str, Any], stopped: threading.Event | Any, site_api: Any,
        logger: logging.Logger, runtime: LocalRuntime | None = None) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    spec = DataNodeSpec.model_validate(body["spec"])
    hub = spec.hub
    if hub is None:
        return
    owner = owner_reference(body)
    while not stopped:
        state = enrolment.ensure(site_api, namespace, name, owner, hub)
        settling = False  # training work waits on the hub: look again soon
        if state.phase == "Enrolled":
            state, settling = _beat(site_api, namespace, name, hub.endpoint, hub.site_name,
                                    state, runtime, logger)
        _record(site_api, namespace, name, state, hub.site_name, logger)
        pause = HEARTBEAT_SECONDS if state.phase == "Enrolled" and not settling \
            else RETRY_SECONDS
        stopped.wait(pause)


def _beat(site_api: Any, namespace: str, name: str, endpoint: str, site: str,
          enrolled: enrolment.State, runtime: LocalRuntime | None = None,
          logger: logging.Logger | None = None) -> tuple[enrolment.State, bool]:
    """Renew the heartbeat, then answer any work the hub offers (one connection, pulled)."""
    credentials = enrolment.load_credentials(site_api, namespace, name)
    hub_api = enrolment.hub_client_for(credentials, endpoint)
    settling = False
    try:
        enrolment.heartbeat(hub_api, site, holder=f"{namespace}/{name}")
        settling = _answer_work(site_api, hub_api, namespace, name, site, runtime,
                                logger or logging.getLogger(__name__))
        access.answer_reviews(site_api, hub_api, namespace, name, site)
    except client.ApiException as exc:
        return enrolment.State("Enrolled", "HeartbeatRefused",
                               f"the hub refused the heartbeat ({exc.status})"), False
    except Exception as exc:  # the hub is down or unreachable: keep working locally
        return enrolment.State("Enrolled", "HubUnreachable",
                               f"cannot reach the hub ({type(exc).__name__}); "
                               "working locally and retrying"), False
    finally:
        hub_api.close()
    return enrolled, settling


def _answer_work(site_api: Any, hub_api: Any, namespace: str, name: str, site: str,
                 runtime: LocalRuntime | None = None,
                 logger: logging.Logger | None = None) -> bool:
    """Decide on each WorkItem and, with a training runtime, take part in accepted
    TrainingJobs (site/training.py). True while some training work waits on the hub."""
    logger = logger or logging.getLogger(__name__)
    local = client.CustomObjectsApi(site_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)
    policy = DataNodeSpec.model_validate(local["spec"]).policy
    approved = work.approved_names(local)
    hub = client.CustomObjectsApi(hub_api)
    # Without a runtime the site never runs an app, so it answers on its policy alone.
    check = training.app_check if runtime is not None else None
    datanode, settling, taking_part = f"{namespace}.{name}", False, set()
    for item in hub.list_namespaced_custom_object(GROUP, VERSION, namespace_of(site),
                                                  "workitems")["items"]:
        decision = work.decide(policy, item, approved, check)
        wanted: dict[str, Any] = {"decision": decision.decision, "reason": decision.reason,
                                  "message": decision.message}
        if runtime is not None and decision.decision == "Accepted" and training.is_training(item):
            wanted.update(training.take_part(runtime, datanode, site, policy, item, logger))
            taking_part.add(training.job_uid(item))
            settling |= wanted["training"] == "AwaitingRegistration"
        shown = item.get("status") or {}
        if all(shown.get(key) == value for key, value in wanted.items()):
            continue
        conditions = set_condition(shown.get("conditions"), "Decided",
                                   decision.decision != "Pending", decision.reason,
                                   decision.message, item["metadata"].get("generation"))
        hub.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace_of(site), "workitems", item["metadata"]["name"],
            {"status": {**wanted, "conditions": conditions,
                        "observedGeneration": item["metadata"].get("generation")}})
    if runtime is not None:
        training.stop_withdrawn(runtime, datanode, taking_part, logger)
    return settling


def _record(site_api: Any, namespace: str, name: str, state: enrolment.State, site: str,
            logger: logging.Logger) -> None:
    """Write the state when the DataNode does not show it yet (a status written by another
    handler in between may have dropped it, so compare with what is there, not with memory)."""
    objects = client.CustomObjectsApi(site_api)
    current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    status = current.get("status") or {}
    generation = current["metadata"].get("generation")
    shown = get_condition(status.get("conditions"), "Enrolled")
    if (status.get("enrolment") == state.phase and shown is not None
            and shown["reason"] == state.reason):
        return
    conditions = set_condition(status.get("conditions"), "Enrolled",
                               state.phase == "Enrolled", state.reason, state.message,
                               generation)
    reachable = state.reason not in ("HubUnreachable", "HubError")
    conditions = set_condition(conditions, "HubReachable", reachable,
                               "Reachable" if reachable else state.reason,
                               "the hub answers" if reachable else state.message, generation)
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name,
        {"status": {"conditions": conditions, "enrolment": state.phase,
                    "hubNamespace": namespace_of(site) if state.phase == "Enrolled" else None}},
    )
    (kopf.info if state.phase == "Enrolled" and reachable else kopf.warn)(
        current, reason=state.reason, message=state.message)
    logger.info("enrolment of %s/%s: %s (%s)", namespace, name, state.phase, state.reason)
