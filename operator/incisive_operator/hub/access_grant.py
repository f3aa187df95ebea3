"""A granted DataAccessRequest: scoped RBAC for the researcher, a ledger entry, an expiry.

The access is Kubernetes RBAC on the hub, so the apiserver itself enforces it: in each
granted site's namespace, a Role allowing `get` on exactly the granted datasets' catalogue
objects (by resourceNames; no list, no watch, nothing else) and a RoleBinding of it to the
researcher's user name, the one the signed request names. Both carry the expiry time; the
hub operator deletes them when it passes (its timer looks every few seconds, and a
restarted operator revokes overdue grants on its first pass).

RBAC cannot expire by itself, so the operator's clock is the enforcement: while the hub
operator is down, a grant that falls due stays until it returns. docs/identity.md says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from kubernetes import client

from ..kube import apply
from ..naming import ANNOTATION_PREFIX, MANAGED_BY
from .access import REQUEST_UID_LABEL, dataset_object
from .sites import namespace_of

EXPIRES_ANNOTATION = f"{ANNOTATION_PREFIX}/access-expires-at"
RBAC = "rbac.authorization.k8s.io"
log = logging.getLogger(__name__)


def role_name(request: dict[str, Any]) -> str:
    meta = request["metadata"]
    return f"incisive-access.{meta['namespace']}.{meta['name']}"[:253]


def grant_manifests(request: dict[str, Any], expires_at: str) -> list[dict[str, Any]]:
    name = role_name(request)
    uid = request["metadata"]["uid"]
    req = request["spec"]["request"]
    user = req["requester"]["userName"]
    by_site: dict[str, list[str]] = {}
    for dataset in req["datasets"]:
        by_site.setdefault(dataset["site"], []).append(dataset_object(dataset["name"]))
    manifests = []
    for site, objects in sorted(by_site.items()):
        metadata = {
            "name": name, "namespace": namespace_of(site),
            "labels": {REQUEST_UID_LABEL: uid, **MANAGED_BY},
            "annotations": {EXPIRES_ANNOTATION: expires_at},
        }
        manifests.append({
            "apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": metadata,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "resourceNames": sorted(set(objects)), "verbs": ["get"]}],
        })
        manifests.append({
            "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": metadata,
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
        })
    return manifests


def apply_grant(api: Any, request: dict[str, Any], expires_at: str) -> list[str]:
    """Apply the Roles and bindings; returns the Roles as namespace/name."""
    roles = []
    for manifest in grant_manifests(request, expires_at):
        apply(api, manifest)
        if manifest["kind"] == "Role":
            roles.append(f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}")
    return roles


def existing_expiry(api: Any, uid: str) -> str | None:
    """The expiry written on Roles already granted (a pass that stopped half-way)."""
    roles = client.RbacAuthorizationV1Api(api).list_role_for_all_namespaces(
        label_selector=f"{REQUEST_UID_LABEL}={uid}").items
    found = [(r.metadata.annotations or {}).get(EXPIRES_ANNOTATION) for r in roles]
    return min((f for f in found if f), default=None)


def revoke(api: Any, uid: str) -> int:
    """Delete every binding, then every Role, of this request; returns how many objects."""
    rbac = client.RbacAuthorizationV1Api(api)
    selector = f"{REQUEST_UID_LABEL}={uid}"
    removed = 0
    # Bindings first: a Role without a binding grants nothing, the other way round it could.
    for binding in rbac.list_role_binding_for_all_namespaces(label_selector=selector).items:
        removed += _delete(rbac.delete_namespaced_role_binding, binding.metadata)
    for role in rbac.list_role_for_all_namespaces(label_selector=selector).items:
        removed += _delete(rbac.delete_namespaced_role, role.metadata)
    return removed


def _delete(call: Any, metadata: Any) -> int:
    try:
        call(metadata.name, metadata.namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return 0
        raise
    return 1


def expiry(now: dt.datetime, duration: dt.timedelta) -> str:
    return _t(now + duration)


def is_due(expires_at: str, now: dt.datetime) -> bool:
    return now >= dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))


def _t(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
