"""Hub mode: fan a TrainingJob out to the selected sites, gather their decisions, and run
the federated training once enough sites accepted (hub/training.py).

Level-based: each pass lists the Ready FederatedSites and the job's WorkItems, writes the
WorkItems that are missing, and derives the status from what the sites answered and from
the run's own record. A site is never dropped once asked (its answer stays visible); new
matching sites are asked until training starts. Without a training runtime
(`--fl-state-dir`) the job stops at ReadyToTrain.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client

from .. import ledger_events
from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..conditions import get_condition, set_condition
from ..fl.local import LocalRuntime
from ..hub import fanout, training
from ..kube import apply
from ..metrics import measured

KIND = "TrainingJob"
PLURAL = "trainingjobs"


def register(registry: kopf.OperatorRegistry, memo_key: str = "hub_api") -> None:
    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="fanout")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="fanout")
    @kopf.timer(GROUP, VERSION, PLURAL, interval=3, backoff=5, registry=registry,
                id="gather")
    def reconcile_job(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
    ) -> None:
        with measured(KIND):
            converge(dict(body), patch, memo[memo_key], logger, memo.get("fl_runtime"))

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="withdraw")
    def withdraw(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        runtime = memo.get("fl_runtime")
        if runtime is not None:
            training.forget(body["metadata"]["uid"], runtime)
        # WorkItems live in the sites' namespaces: no owner reference can reach them.
        objects = client.CustomObjectsApi(memo[memo_key])
        selector = f"{fanout.JOB_UID_LABEL}={body['metadata']['uid']}"
        items = objects.list_cluster_custom_object(GROUP, VERSION, "workitems",
                                                   label_selector=selector)["items"]
        for item in items:
            try:
                objects.delete_namespaced_custom_object(
                    GROUP, VERSION, item["metadata"]["namespace"], "workitems",
                    item["metadata"]["name"])
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        logger.info("withdrew %d work items", len(items))


def converge(job: dict[str, Any], patch: kopf.Patch, api: Any, logger: logging.Logger,
             runtime: LocalRuntime | None = None) -> None:
    objects = client.CustomObjectsApi(api)
    generation = job["metadata"].get("generation")
    status = job.get("status") or {}
    conditions = list(status.get("conditions") or [])
    spec = job["spec"]
    min_sites = spec.get("minSites", 2)

    existing = {
        item["metadata"]["namespace"].removeprefix("site-"): item
        for item in objects.list_cluster_custom_object(
            GROUP, VERSION, "workitems",
            label_selector=f"{fanout.JOB_UID_LABEL}={job['metadata']['uid']}")["items"]
    }
    if not status.get("startTime"):
        # An offer made before the job's app changed is withdrawn, and made again below.
        for site, item in list(existing.items()):
            if fanout.is_stale(job, item):
                fanout.delete_workitem(api, item)
                del existing[site]
    selected = sorted(existing)
    if not status.get("startTime"):
        sites = objects.list_cluster_custom_object(GROUP, VERSION, "federatedsites")["items"]
        matching = fanout.select_sites(sites, spec.get("siteSelector") or {})
        for site in matching:
            if site not in existing:
                existing[site] = apply(api, fanout.workitem(job, site))
        selected = sorted(set(selected) | set(matching))

    decisions = fanout.decisions(selected, existing)
    accepted = [d for d in decisions if d["decision"] == "Accepted"]
    pending = [d for d in decisions if d["decision"] == "Pending"]
    declined = [d for d in decisions if d["decision"] == "Declined"]

    if len(selected) >= min_sites:
        conditions = set_condition(conditions, "SitesSelected", True, "Selected",
                                   f"{len(selected)} Ready sites match the selector", generation)
    else:
        conditions = set_condition(
            conditions, "SitesSelected", False, "NotEnoughSites",
            f"{len(selected)} Ready sites match the selector; minSites is {min_sites}",
            generation)

    if len(accepted) >= min_sites:
        accept = ("True", "Accepted", f"{len(accepted)} of {len(selected)} sites accepted")
    elif len(accepted) + len(pending) < min_sites and len(selected) >= min_sites:
        reasons = "; ".join(f"{d['site']}: {d['reason']}" for d in declined)
        accept = ("False", "Declined",
                  f"only {len(accepted)} sites accepted and {len(pending)} are undecided; "
                  f"minSites is {min_sites}. Declined: {reasons}")
    else:
        accept = ("Unknown", "AwaitingSites",
                  f"{len(accepted)} accepted, {len(pending)} undecided, {len(declined)} "
                  f"declined; minSites is {min_sites}")
    conditions = set_condition(conditions, "SitesAccepted", accept[0], accept[1], accept[2],
                               generation)

    previous = get_condition(conditions, "Succeeded")
    final = previous is not None and previous["status"] != "Unknown"
    outcome = None
    if runtime is not None and not final and (status.get("startTime") or accept[0] == "True"):
        outcome = training.drive(job, existing, [d["site"] for d in accepted], len(pending),
                                 runtime, api, logger)
    if final:
        succeeded = (previous["status"], previous["reason"], previous["message"])
    elif outcome is not None:
        succeeded = outcome.succeeded
    elif accept[0] == "False":
        succeeded = ("False", "InsufficientSites", accept[2])
    elif accept[0] == "True":
        succeeded = ("Unknown", "ReadyToTrain",
                     "enough sites accepted; training starts with the federated-learning run"
                     if runtime is not None else
                     "enough sites accepted; this hub operator runs no federated-learning "
                     "runtime (--fl-state-dir), so no run starts")
    else:
        succeeded = ("Unknown", "AwaitingSites", accept[2])
    if runtime is not None and (final or succeeded[0] != "Unknown"):
        training.wind_down(job, existing, runtime, api, logger)
    before = previous["reason"] if previous else None
    conditions = set_condition(conditions, "Succeeded", *succeeded, generation)
    if before != succeeded[1]:
        (kopf.warn if succeeded[0] == "False" else kopf.info)(
            job, reason=succeeded[1], message=succeeded[2])

    if outcome is not None:
        # The ledger gets the run's start and its model, once each edge is seen (at least
        # once: a pass whose status patch fails records it again on the next pass).
        if outcome.status.get("startTime") and not status.get("startTime"):
            ledger_events.training_started(job)
        model = outcome.status.get("model") or {}
        if succeeded[0] == "True" and before != succeeded[1] and model.get("sha256"):
            ledger_events.training_finished(job, model["sha256"])
        for decision in decisions:
            if decision["site"] in outcome.site_states:
                decision["state"], decision["stateMessage"] = outcome.site_states[decision["site"]]
        patch.status.update(outcome.status)
    else:  # keep what the run last showed
        shown = {d["site"]: d for d in status.get("sites") or []}
        for decision in decisions:
            for key in ("state", "stateMessage"):
                if shown.get(decision["site"], {}).get(key):
                    decision[key] = shown[decision["site"]][key]
    patch.status["conditions"] = conditions
    patch.status["sites"] = decisions
    patch.status["acceptedSites"] = len(accepted)
    patch.status["observedGeneration"] = generation
    logger.debug("job gathered: %d selected, %d accepted", len(selected), len(accepted))
