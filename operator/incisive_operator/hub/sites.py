"""The hub's view of a hospital site: its namespace, what it may do there, its heartbeat.

A site's credentials on the hub (a client certificate for `incisive:site:<name>`) are
scoped by RBAC to its own namespace `site-<name>`: it reads its WorkItems and
AccessReviews, writes their status, renews its heartbeat Lease and posts Events. Nothing
cluster-scoped, nothing in another site's namespace.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..api import GROUP
from ..naming import MANAGED_BY, SITE_LABEL

SITE_USER_PREFIX = "incisive:site:"
SITES_GROUP = "incisive:sites"
BOOTSTRAP_GROUP = "system:bootstrappers:incisive"
HEARTBEAT_LEASE = "heartbeat"
HEARTBEAT_SECONDS = 10
# Missing three heartbeats in a row makes a site Unknown (the node-lifecycle idea: a
# lease, a grace period, and Unknown rather than False because the hub cannot know).
GRACE_SECONDS = 3 * HEARTBEAT_SECONDS + 10


def namespace_of(site: str) -> str:
    return f"site-{site}"


def user_of(site: str) -> str:
    return f"{SITE_USER_PREFIX}{site}"


def site_manifests(site: str) -> list[dict[str, Any]]:
    namespace = namespace_of(site)
    labels = {SITE_LABEL: site, **MANAGED_BY}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": labels}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "incisive-site", "namespace": namespace, "labels": labels},
            "rules": [
                {"apiGroups": [GROUP], "resources": ["workitems"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [GROUP], "resources": ["workitems/status"],
                 "verbs": ["get", "update", "patch"]},
                # Data-access requests the hub forwards (site/access.py answers them).
                {"apiGroups": [GROUP], "resources": ["accessreviews"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [GROUP], "resources": ["accessreviews/status"],
                 "verbs": ["get", "update", "patch"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch"]},
                {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                 "verbs": ["create", "patch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "incisive-site", "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "incisive-site"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user_of(site)}],
        },
    ]


def bootstrap_rbac() -> list[dict[str, Any]]:
    """What a bootstrap token may do on the hub: ask for a certificate, and read the answer."""
    name = "incisive:site-bootstrapper"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": MANAGED_BY},
            "rules": [{"apiGroups": ["certificates.k8s.io"],
                       "resources": ["certificatesigningrequests"],
                       "verbs": ["create", "get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": MANAGED_BY},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": BOOTSTRAP_GROUP}],
        },
    ]


def heartbeat_age(lease: dict[str, Any] | None, now: dt.datetime) -> float | None:
    """Seconds since the site last renewed its Lease, or None if it never did."""
    renewed = ((lease or {}).get("spec") or {}).get("renewTime")
    if not renewed:
        return None
    when = dt.datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    return (now - when).total_seconds()


def heartbeat_gap(previous: str | None, lease: dict[str, Any] | None) -> float | None:
    """Seconds between the heartbeat the hub last recorded and the Lease's current one."""
    renewed = ((lease or {}).get("spec") or {}).get("renewTime")
    if not previous or not renewed or previous == renewed:
        return None
    before = dt.datetime.fromisoformat(str(previous).replace("Z", "+00:00"))
    after = dt.datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    return (after - before).total_seconds()
