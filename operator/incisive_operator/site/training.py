"""Site mode: take part in a TrainingJob the site accepted, pulling everything.

For each TrainingJob WorkItem in its namespace on the hub, the site (only ever dialling
out) does, level-based on every pass of its enrolment loop:

1. Before accepting: the app check (`app_check`): the bundle the site builds from its own
   image is the one the job names, and a key its policy trusts signed it.
2. Accepted: make the SuperNode key pair here (once per DataNode; the private key never
   leaves the site) and publish the public key in the WorkItem's status.
3. Once the hub has registered the key and written the Fleet address and CA into the
   WorkItem (fleet.py): run a SuperNode that dials out with TLS and the site's key, pinned
   to the verified app, on the data the site's operator chose (`--fl-data`).
4. The hub marks the WorkItem Finished, or it goes away: stop the SuperNode.
"""

from __future__ import annotations

import logging
from typing import Any

from incisive_node.fl.processes import FlowerProcessError

from ..api.v1alpha1.datanode import Policy
from ..fl import apps, fleet
from ..fl.local import LocalRuntime
from ..fl.settings import data_query_config
from .work import Decision

TRAINING_KIND = "TrainingJob"


def is_training(workitem: dict[str, Any]) -> bool:
    return ((workitem.get("spec") or {}).get("jobRef") or {}).get("kind") == TRAINING_KIND


def job_uid(workitem: dict[str, Any]) -> str:
    return str(workitem["spec"]["jobRef"]["uid"])


def app_check(policy: Policy, workitem: dict[str, Any]) -> Decision | None:
    """Decline a TrainingJob whose app this site cannot trust; None when it can."""
    if not is_training(workitem):
        return None
    spec = workitem.get("spec") or {}
    try:
        apps.verify_for_site(spec.get("appReference"), spec.get("appDigest"),
                             spec.get("appSignature"), policy.trusted_app_signing_keys)
    except apps.AppRefused as refused:
        return Decision("Declined", refused.reason, str(refused))
    return None


def take_part(runtime: LocalRuntime, datanode: str, site: str, policy: Policy,
              workitem: dict[str, Any], logger: logging.Logger) -> dict[str, Any]:
    """Converge this site's part in an accepted TrainingJob; the WorkItem status fields
    that show it."""
    keys = runtime.node_keys(datanode)
    shown: dict[str, Any] = {"supernodePublicKey": keys.public_openssh()}
    told = fleet.read(workitem)
    uid = job_uid(workitem)
    if told is not None and told.phase == "Finished":
        if runtime.stop_supernode(datanode, uid):
            logger.info("job %s finished: stopped its SuperNode", uid)
        return {**shown, "training": "Stopped", "trainingMessage": "the job has finished"}
    if told is None or told.address is None or told.ca_cert is None:
        return {**shown, "training": "AwaitingRegistration",
                "trainingMessage": "waiting for the hub to register this site's SuperNode key"}
    spec = workitem["spec"]
    try:
        query = data_query_config(spec.get("dataQuery") or {})
    except ValueError as bad:  # the job's own words, no data: shown as they are
        return {**shown, "training": "Failed", "trainingMessage": str(bad)}
    try:
        pinned = apps.verify_for_site(spec.get("appReference"), spec.get("appDigest"),
                                      spec.get("appSignature"), policy.trusted_app_signing_keys)
        data = runtime.settings.data
        if data is None:
            raise ValueError("this site operator has no --fl-data")
        node_config = data.node_config(runtime.settings.torch_threads)
        if data.kind == "store":
            node_config.update(query)
        runtime.supernode(datanode, uid, site=site, fleet=told, fab=pinned,
                          node_config=node_config)
    except apps.AppRefused as refused:  # the policy changed since the site accepted
        runtime.stop_supernode(datanode, uid)
        return {**shown, "training": "Stopped", "trainingMessage": str(refused)}
    except (FlowerProcessError, OSError, ValueError) as error:
        logger.warning("the SuperNode for job %s does not start: %s", uid, error)
        return {**shown, "training": "Failed",
                "trainingMessage": f"the SuperNode does not start ({type(error).__name__})"}
    return {**shown, "training": "Running",
            "trainingMessage": f"the SuperNode runs, dialling {told.address}"}


def stop_withdrawn(runtime: LocalRuntime, datanode: str, keep: set[str],
                   logger: logging.Logger) -> None:
    """Stop the SuperNodes of jobs whose WorkItems are gone (or no longer accepted)."""
    for uid in runtime.running_supernodes(datanode):
        if uid not in keep:
            runtime.stop_supernode(datanode, uid)
            logger.info("work for job %s withdrawn: stopped its SuperNode", uid)
