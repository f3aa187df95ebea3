"""From one TrainingJob on the hub to one WorkItem per selected site, and back.

The hub never pushes to a hospital: it writes a WorkItem into each selected site's own
namespace on the hub, and each site pulls it, decides under its own policy, and writes the
decision into the WorkItem's status. The job's status gathers those decisions.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..naming import MANAGED_BY
from .sites import namespace_of

JOB_UID_LABEL = f"{GROUP}/job-uid"
JOB_NAME_LABEL = f"{GROUP}/job-name"


def matches(labels: dict[str, str], selector: dict[str, Any]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def is_ready(site: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (site.get("status") or {}).get("conditions") or [])


def select_sites(sites: list[dict[str, Any]], selector: dict[str, Any]) -> list[str]:
    """Names of Ready sites whose labels match, in a stable order."""
    return sorted(s["metadata"]["name"] for s in sites
                  if matches(s["metadata"].get("labels") or {}, selector) and is_ready(s))


def workitem_name(job: dict[str, Any]) -> str:
    return f"{job['metadata']['namespace']}.{job['metadata']['name']}"


def workitem(job: dict[str, Any], site: str) -> dict[str, Any]:
    spec = job["spec"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkItem",
        "metadata": {
            "name": workitem_name(job), "namespace": namespace_of(site),
            "labels": {JOB_UID_LABEL: job["metadata"]["uid"],
                       JOB_NAME_LABEL: job["metadata"]["name"][:63], **MANAGED_BY},
        },
        "spec": {
            "jobRef": {"kind": job["kind"], "namespace": job["metadata"]["namespace"],
                       "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]},
            "purpose": spec["purpose"],
            "appDigest": spec["app"]["digest"],
            "appReference": spec["app"]["reference"],
            **({"appSignature": spec["app"]["signature"]} if spec["app"].get("signature")
               else {}),
            "dataQuery": spec.get("dataQuery") or {},
        },
    }


def is_stale(job: dict[str, Any], item: dict[str, Any]) -> bool:
    """Whether a WorkItem offers another app than the job names now (its spec is immutable,
    so the offer is withdrawn and made again)."""
    app = job["spec"]["app"]
    offered = item.get("spec") or {}
    return (offered.get("appDigest"), offered.get("appReference"),
            offered.get("appSignature")) != (app["digest"], app["reference"],
                                            app.get("signature"))


def delete_workitem(api: Any, item: dict[str, Any]) -> None:
    try:
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, item["metadata"]["namespace"], "workitems",
            item["metadata"]["name"])
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def decisions(selected: list[str], workitems: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """One entry per selected site: its decision and reason, Pending until it answers."""
    result = []
    for site in selected:
        status = (workitems.get(site) or {}).get("status") or {}
        result.append({
            "site": site,
            "decision": status.get("decision") or "Pending",
            "reason": status.get("reason") or "AwaitingSite",
            "message": status.get("message") or "the site has not picked the work up yet",
        })
    return result
