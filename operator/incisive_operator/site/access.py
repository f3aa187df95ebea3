"""A site's answer to a data-access request the hub forwards, under the site's own policy.

Like work (site/work.py), pulled: the site reads the AccessReviews in its namespace on the
hub during its heartbeat and writes its decision into their status. The purpose must be one
its policy allows; unless the policy says Automatic, a local person approves each review by
name (annotation `incisive-project.eu/approved-access` on the DataNode, comma-separated
AccessReview names). A decision once made is final: the grant the hub builds on it is
recorded in the ledger, and a change of local policy applies to the next request.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.datanode import DataNodeSpec, Policy
from ..conditions import set_condition
from ..hub.sites import namespace_of
from .work import Decision, approved_names, purpose_refused

APPROVED_ACCESS_ANNOTATION = "incisive-project.eu/approved-access"
REVIEWS = "accessreviews"
FINAL = ("Approved", "Declined")
log = logging.getLogger(__name__)


def decide(policy: Policy, review: dict[str, Any], approved: set[str]) -> Decision:
    spec = review.get("spec") or {}
    purpose = spec.get("purpose", "")
    if (refused := purpose_refused(policy, purpose)) is not None:
        return refused
    name = review["metadata"]["name"]
    if policy.work_approval == "Manual" and name not in approved:
        return Decision("Pending", "AwaitingLocalApproval",
                        f"this site approves data access by hand: annotate its DataNode with "
                        f"{APPROVED_ACCESS_ANNOTATION}={name}")
    how = "automatically" if policy.work_approval == "Automatic" else "by a local approver"
    datasets = ", ".join(d["name"] for d in spec.get("datasets") or [])
    return Decision("Approved", "PolicyApproved",
                    f"purpose {purpose!r} is allowed; {datasets} for {spec.get('duration')}, "
                    f"approved {how}")


def answer_reviews(site_api: Any, hub_api: Any, namespace: str, name: str, site: str) -> int:
    """Decide the undecided AccessReviews in this site's hub namespace; returns how many
    answers were written."""
    local = client.CustomObjectsApi(site_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "datanodes", name)
    policy = DataNodeSpec.model_validate(local["spec"]).policy
    approved = approved_names(local, APPROVED_ACCESS_ANNOTATION)
    hub = client.CustomObjectsApi(hub_api)
    try:
        reviews = hub.list_namespaced_custom_object(GROUP, VERSION, namespace_of(site),
                                                    REVIEWS)["items"]
    except client.ApiException as exc:
        # A hub that does not serve AccessReviews yet (older, or its site Role not updated
        # yet) is not a failed heartbeat: there is simply nothing to answer.
        if exc.status in (403, 404):
            log.debug("the hub offers no access reviews (%s)", exc.status)
            return 0
        raise
    written = 0
    for review in reviews:
        shown = review.get("status") or {}
        if shown.get("decision") in FINAL:
            continue
        decision = decide(policy, review, approved)
        if (shown.get("decision"), shown.get("reason")) == (decision.decision, decision.reason):
            continue
        generation = review["metadata"].get("generation")
        conditions = set_condition(shown.get("conditions"), "Decided",
                                   decision.decision != "Pending", decision.reason,
                                   decision.message, generation)
        hub.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace_of(site), REVIEWS, review["metadata"]["name"],
            {"status": {"decision": decision.decision, "reason": decision.reason,
                        "message": decision.message, "conditions": conditions,
                        "observedGeneration": generation}})
        written += 1
        log.info("access review %s: %s (%s)", review["metadata"]["name"], decision.decision,
                 decision.reason)
    return written
