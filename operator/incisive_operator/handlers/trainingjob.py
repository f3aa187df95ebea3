"""Hub mode: fan a TrainingJob out to the selected sites and gather their decisions.

Level-based: each pass lists the Ready FederatedSites and the job's WorkItems, writes the
WorkItems that are missing, and derives the status from what the sites answered. A site is
never dropped once asked (its answer stays visible); new matching sites are asked until
training starts.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..conditions import get_condition, set_condition
from ..hub import fanout
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
            converge(dict(body), patch, memo[memo_key], logger)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="withdraw")
    def withdraw(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
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


def converge(job: dict[str, Any], patch: kopf.Patch, api: Any, logger: logging.Logger) -> None:
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
    if accept[0] == "False":
        succeeded = ("False", "InsufficientSites", accept[2])
    elif previous is not None and previous["status"] != "Unknown":
        succeeded = (previous["status"], previous["reason"], previous["message"])
    elif accept[0] == "True":
        succeeded = ("Unknown", "ReadyToTrain",
                     "enough sites accepted; training starts with the federated-learning run")
    else:
        succeeded = ("Unknown", "AwaitingSites", accept[2])
    before = previous["reason"] if previous else None
    conditions = set_condition(conditions, "Succeeded", *succeeded, generation)
    if before != succeeded[1]:
        (kopf.warn if succeeded[0] == "False" else kopf.info)(
            job, reason=succeeded[1], message=succeeded[2])

    patch.status["conditions"] = conditions
    patch.status["sites"] = decisions
    patch.status["acceptedSites"] = len(accepted)
    patch.status["observedGeneration"] = generation
    logger.debug("job gathered: %d selected, %d accepted", len(selected), len(accepted))
